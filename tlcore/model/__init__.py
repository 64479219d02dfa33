"""The network: pretrained backbones and their tables, blocks and freezing, building the classifier, folding.

Owns: the backbone table and weights (`backbones`), importing weights and telling
trained ones from untrained (`weights_import`, `weights_check`), the blocks each backbone's
authors named and the one parser of freeze options (`blocks`), the classifier
with its preprocessing and augmentation inside (`build`), and batch
normalization folded into convolutions for the frozen pass (`folding`).

May import: `tlcore.errors`, `tlcore.paths`, Keras, numpy and h5py. Nothing from
training, runs or results: a model knows nothing of how it is trained. Importing
weights asks `tlcore.classroom.accounts` who is a teacher, and saves a browser
upload with `tlcore.data.uploads` (neither imports the model).
"""
