"""The network: pretrained backbones and their tables, blocks and freezing, building the classifier, folding.

Owns: the backbone table and weights (`backbones`), the blocks each backbone's
authors named and the one parser of freeze options (`blocks`), the classifier
with its preprocessing and augmentation inside (`build`), and batch
normalization folded into convolutions for the frozen pass (`folding`).

May import: `tlcore.errors`, `tlcore.paths`, Keras and numpy. Nothing from
training, runs or results: a model knows nothing of how it is trained.
"""
