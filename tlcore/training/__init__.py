"""Training one run: its config, the session that trains, callbacks, the feature cache and the time estimate.

Owns: `TrainConfig` (`config`), running a run in this process (`run`) or in its
own process (`launch`), the training session (`session`), Keras callbacks
(`callbacks`), GPU settings (`accelerator`), decoding pictures for training
(`pipeline`), the decision whether and where frozen-layer features are cached
(`feature_cache`), computing them (`features`), keeping them between runs
(`feature_store`), how long a run will take (`estimate`) and training a run
again with fixes to its data (`again`).

May import: `tlcore.data`, `tlcore.model`, `tlcore.runs`, `tlcore.results.evaluation`,
`tlcore.errors`, `tlcore.paths`.
"""
