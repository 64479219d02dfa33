"""Train on cached activations of the frozen part of the network.

When the bottom of the network is frozen, its output for an image never changes,
yet the plain recipe (frozen backbone inside `model.fit`) computes it again in
every epoch. Here the activations at the freeze boundary are computed once per
image, kept in memory (or in a memory-mapped file in the run folder when large),
and only the trainable top is trained on them. The top model shares its layers
with the full model, so the full model is trained too and is what gets saved.

With augmentation on, a bounded number of augmented views per training image is
computed once, and each epoch sees one random view of every image.
"""

from __future__ import annotations

import math
import pathlib
import time
import warnings
from dataclasses import dataclass

import keras
import numpy as np

from tlcore.model import build as model_module
from tlcore.model import folding
from tlcore.runs import record as run_record

# Images per forward call of the feature pass. On a CPU small batches stay in
# the caches: MobileNetV2 0.35 at 224 px on 2 cores runs at about 318 images/s in
# batches of 16, 292 in batches of 64, and each new batch shape's first call
# costs 0.05 s more at 16 than at 64 (`benchmarks/speed.py` measures the pass). A GPU
# wants large batches.
PASS_BATCH_SIZE_CPU = 16
PASS_BATCH_SIZE_GPU = 64
TOP_BLOCKS_LAYER = "backbone_top"  # the trainable blocks inside a plan's top model


def pass_batch_size(gpus: int) -> int:
    return PASS_BATCH_SIZE_GPU if gpus else PASS_BATCH_SIZE_CPU


class FeaturePassStopped(Exception):
    """The user asked to stop while features were being computed."""


@dataclass
class FeaturePlan:
    """The two halves of the network around the freeze boundary."""

    prefix: object  # keras.Model: preprocessed-free raw images -> boundary activations
    top: object  # keras.Model: boundary activations -> class probabilities (shares layers)
    boundary: str  # human description of where the cut is
    feature_shape: tuple[int, ...]
    forward: object = None  # the prefix's compiled inference call, made on first use
    batch_size: int = PASS_BATCH_SIZE_CPU  # images per forward call (`pass_batch_size`)
    folded: bool = False  # whether `forward` runs the prefix with batch normalization folded


def plan_feature_cache(parts: model_module.ModelParts) -> FeaturePlan | None:
    """Cut the model at its freeze boundary, or None when it cannot be cut.

    The boundary is the input of the first backbone layer with trainable
    weights; with everything frozen it is after global pooling (the smallest
    possible features). A cut is possible only when one tensor crosses it.
    """
    full = parts.model
    backbone = parts.backbone
    first = next((layer for layer in backbone.layers if layer.trainable and layer.trainable_weights), None)
    image_input = keras.Input(shape=full.input_shape[1:], name="image")
    preprocessed = full.get_layer(model_module.PREPROCESS_LAYER)(image_input)
    pool = full.get_layer(model_module.POOL_LAYER)
    dropout = full.get_layer(model_module.DROPOUT_LAYER)
    classifier = full.get_layer(model_module.CLASSIFIER_LAYER)
    if first is None:
        pooled = pool(backbone(preprocessed, training=False))
        prefix = keras.Model(image_input, pooled, name="frozen_prefix")
        feature_input = keras.Input(shape=pooled.shape[1:], name="features")
        top = keras.Model(feature_input, classifier(dropout(feature_input)), name="trainable_top")
        return FeaturePlan(prefix, top, "after global pooling (whole backbone frozen)", tuple(pooled.shape[1:]))
    boundary_tensor = first.input
    if isinstance(boundary_tensor, (list, tuple)):
        return None
    try:
        backbone_bottom = keras.Model(backbone.input, boundary_tensor, name="backbone_bottom")
        backbone_top = keras.Model(boundary_tensor, backbone.output, name=TOP_BLOCKS_LAYER)
    except Exception:  # a skip connection crosses the boundary: no single tensor to cache
        return None
    prefix = keras.Model(image_input, backbone_bottom(preprocessed, training=False), name="frozen_prefix")
    feature_input = keras.Input(shape=tuple(boundary_tensor.shape[1:]), name="features")
    x = backbone_top(feature_input, training=False)
    outputs = classifier(dropout(pool(x)))
    top = keras.Model(feature_input, outputs, name="trainable_top")
    return FeaturePlan(prefix, top, f"before layer {first.name}", tuple(boundary_tensor.shape[1:]))


def allocate(shape: tuple[int, ...], path: pathlib.Path, on_disk: bool) -> np.ndarray:
    """An array in memory, or a memory-mapped file at `path` (as `feature_cache.decide` chose for the run)."""
    if not on_disk:
        return np.empty(shape, dtype="float32")
    return np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=shape)


def compute_features(
    plan: FeaturePlan,
    batches,
    count: int,
    output: np.ndarray,
    run_dir: pathlib.Path,
    label: str,
    augmentation=None,
) -> "PassTiming":
    """Run the frozen prefix over image batches once, filling `output`.

    Args:
        plan: from `plan_feature_cache`.
        batches: an iterable of image batches (numpy or tensors, 0-255 RGB).
        count: number of images, for progress.
        output: array of shape (count, *feature_shape) to fill.
        run_dir: for progress rows and the stop file.
        label: "train", "val", ... shown in progress.
        augmentation: layers applied in training mode first (augmented views).

    Returns:
        A `PassTiming`: images per second of the whole pass, and of the pass
        after its first batch (which also pays the one-time graph tracing).

    Raises:
        FeaturePassStopped: a stop was requested between two batches.
    """
    started = time.monotonic()
    first_batch_done = None
    position = 0
    last_report = 0.0
    _ensure_forward(plan)  # traced once, reused for every split
    forward = plan.forward
    for batch in _made_ahead(batches, augmentation):
        if run_record.stop_requested(run_dir):
            raise FeaturePassStopped()
        values = forward(batch)
        output[position : position + len(values)] = keras.ops.convert_to_numpy(values)
        position += len(values)
        now = time.monotonic()
        if first_batch_done is None:
            first_batch_done = (now, position)
        if now - last_report > 0.5 or position >= count:
            last_report = now
            run_record.append_metrics(
                run_dir,
                {"type": "progress", "phase": "features", "split": label, "done": position, "total": count, "time": time.time()},
            )
            run_record.write_status(run_dir, "running", f"computing features of {label} images ({position}/{count})")
    ended = time.monotonic()
    return PassTiming.measure(started, first_batch_done, ended, position)


def _made_ahead(batches, augmentation):
    """The batches, each one changed by `augmentation` (if any) while the previous one goes through the prefix.

    Making a random view (one resampling of every picture) costs about a
    seventh of the pass on a 2-core CPU; made one batch ahead on a worker
    thread, it partly fills the gaps the pass leaves on the cores instead of
    adding to it (views at 0.84 of the plain rate against 0.81 made in turn,
    `benchmarks/views.py`). TensorFlow's ops let go of the GIL.
    """
    if augmentation is None:
        yield from batches
        return
    from concurrent.futures import ThreadPoolExecutor

    iterator = iter(batches)

    def next_changed():
        batch = next(iterator, None)
        return None if batch is None else augmentation(batch, training=True)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlcore-views") as worker:
        pending = worker.submit(next_changed)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = worker.submit(next_changed)
            yield batch


@dataclass(frozen=True)
class PassTiming:
    """How fast a feature pass went."""

    images: int
    seconds: float
    first_batch_s: float  # includes tracing the forward function once
    steady_images_per_s: float | None  # after the first batch; None for a one-batch pass

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)

    @classmethod
    def measure(cls, started: float, first_batch_done, ended: float, images: int) -> "PassTiming":
        if first_batch_done is None:
            return cls(images, ended - started, ended - started, None)
        first_time, first_images = first_batch_done
        rest = images - first_images
        steady = rest / (ended - first_time) if rest and ended > first_time else None
        return cls(images, ended - started, first_time - started, steady)

    def to_dict(self) -> dict:
        return {"images": self.images, "seconds": self.seconds, "images_per_s": self.images_per_s,
                "first_batch_s": self.first_batch_s, "steady_images_per_s": self.steady_images_per_s}


def warm_up(plan: FeaturePlan) -> None:
    """Compile the prefix's forward function now, on a one-image batch.

    Called before waiting for the background decoding, so the one-time graph
    trace (most of a second) overlaps decoding instead of delaying the pass.
    """
    _ensure_forward(plan)
    plan.forward(np.zeros((1, *plan.prefix.input_shape[1:]), dtype="float32"))


def _ensure_forward(plan: FeaturePlan) -> None:
    if plan.forward is None:
        plan.forward, plan.folded = _forward_function(plan.prefix, plan.batch_size)


def _forward_function(prefix, batch_size: int):
    """The prefix's inference call, compiled once for any batch size.

    On TensorFlow a `tf.function` with an unknown batch dimension traces once;
    `predict_on_batch` would trace again for the smaller last batch, which costs
    more than the whole pass on a small dataset. It runs the prefix with its
    batch normalization folded into the convolutions (`tlcore.folding`), over
    half again as fast on a CPU; if folding is not possible, or the folded
    call fails on a one-image trial, it runs the prefix as Keras built it.
    Autograph is off: a Keras model's call has no Python control flow to
    convert, and converting it anyway adds a tenth of a second to the trace.
    Other backends use `predict_on_batch` on batches of one fixed size, since
    JAX compiles anew for every batch shape.

    Returns:
        (forward function, whether it runs the folded prefix).
    """
    if keras.backend.backend() != "tensorflow":
        return _in_fixed_batches(prefix.predict_on_batch, batch_size), False
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *prefix.input_shape[1:]), tf.float32)]

    def compiled(function):
        return tf.function(function, input_signature=signature, reduce_retracing=True, autograph=False)

    try:
        folded = folding.inference_function(prefix)
        if folded is not None:
            forward = compiled(folded)
            forward(np.zeros((1, *prefix.input_shape[1:]), dtype="float32"))  # a failure falls back here
            return forward, True
    except Exception as error:  # folding is only a shortcut; the plain call is always right
        warnings.warn(f"tlcore: the feature pass runs the frozen layers unfolded ({type(error).__name__}: {error})",
                      stacklevel=2)
    return compiled(lambda batch: prefix(batch, training=False)), False


def _in_fixed_batches(predict, size: int):
    """`predict` applied to batches of exactly `size` images (the last one padded with zeros).

    On JAX each new input shape means a new XLA compilation, which costs more
    than the forward pass itself on a small dataset; one shape compiles once,
    in `warm_up`.
    """

    def forward(batch):
        count = int(keras.ops.shape(batch)[0])
        outputs = []
        for start in range(0, count, size):
            chunk = batch[start : start + size]
            missing = size - int(keras.ops.shape(chunk)[0])
            if missing:
                chunk = keras.ops.concatenate([chunk, keras.ops.zeros((missing, *chunk.shape[1:]), dtype=chunk.dtype)])
            outputs.append(keras.ops.convert_to_numpy(predict(chunk))[: size - missing])
        return np.concatenate(outputs)

    return forward


class FeatureBatches(keras.utils.PyDataset):
    """Batches of cached features and one-hot labels for `model.fit`.

    With several augmented views per image, each epoch picks one view of every
    image at random (seeded), so epochs differ as with live augmentation.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int,
                 shuffle: bool, seed: int, sample_weights: np.ndarray | None = None, has_views: bool = False):
        super().__init__()
        self.features = features  # (views, N, ...) when has_views, else (N, ...)
        self.has_views = has_views
        self.labels = np.asarray(labels, dtype=int)
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sample_weights = sample_weights
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def on_epoch_end(self):
        count = len(self.labels)
        self.order = self.rng.permutation(count) if self.shuffle else np.arange(count)
        views = self.features.shape[0] if self.has_views else 1
        self.views = self.rng.integers(0, views, size=count)

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        if self.has_views:
            x = self.features[self.views[rows], rows]
        else:
            x = self.features[rows]
        y = np.eye(self.num_classes, dtype="float32")[self.labels[rows]]
        if self.sample_weights is not None:
            return np.asarray(x), y, self.sample_weights[self.labels[rows]]
        return np.asarray(x), y


def feature_batches(features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, shuffle: bool,
                    seed: int, sample_weights: np.ndarray | None = None, has_views: bool = False):
    """Training or validation batches over cached features.

    Features in memory go through tf.data without being copied into it:
    tf.data shuffles and batches row numbers, and each batch's rows are taken
    from the array by one NumPy call (`from_tensor_slices` on the features
    themselves would copy them into a TensorFlow constant: twice the memory,
    measured at +1 GB for 0.5 GB of features). An epoch over a few hundred
    cached rows still takes milliseconds (a per-element `map`, or a Python
    `PyDataset`, costs three to four times as much). Memory-mapped features
    stream through `FeatureBatches`, so they never have to fit in memory at once.
    """
    if isinstance(features, np.memmap) or keras.backend.backend() != "tensorflow":
        return FeatureBatches(features, labels, num_classes, batch_size, shuffle, seed, sample_weights, has_views)
    import tensorflow as tf

    labels = np.asarray(labels, dtype=int)
    count = len(labels)
    rows = tf.data.Dataset.range(count)
    if has_views:
        # One random draw per image, different in every epoch, the same for the same seed.
        rows = tf.data.Dataset.zip(rows, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True))
    if shuffle:
        rows = rows.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    one_hot = tf.constant(np.eye(num_classes, dtype="float32")[labels])
    weights = None if sample_weights is None else tf.constant(np.asarray(sample_weights, dtype="float32")[labels])
    take = _row_taker(features, has_views)
    row_shape = features.shape[2:] if has_views else features.shape[1:]

    def batch_of(indices, draws=None):
        arguments = [indices, draws if draws is not None else indices]
        x = tf.numpy_function(take, arguments, tf.float32, stateful=False)
        x.set_shape((None, *row_shape))
        batch = (x, tf.gather(one_hot, indices))
        return (*batch, tf.gather(weights, indices)) if weights is not None else batch

    return rows.batch(batch_size).map(batch_of).prefetch(tf.data.AUTOTUNE)


def _row_taker(features: np.ndarray, has_views: bool):
    """The NumPy function that takes one batch's rows (and, with views, each row's drawn view) from `features`."""
    views = features.shape[0] if has_views else 1

    def take(indices, draws):
        if has_views:
            return np.asarray(features[np.asarray(draws) % views, indices], dtype=np.float32)
        return np.asarray(features[indices], dtype=np.float32)

    return take
