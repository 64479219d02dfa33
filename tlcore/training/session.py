"""The Keras part of a run: build, freeze, fit phase by phase, evaluate.

Kept apart from `training.py` (which deals with the run folder, locks and
processes) so the learning itself reads top to bottom. Model code here uses
Keras only; data arrives from `tlcore.pipeline` (tf.data) or as NumPy features.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import shutil
import time
from dataclasses import dataclass

import keras
import numpy as np

from tlcore.data.records import SPLITS, DatasetAudit
from tlcore.model import blocks as blocks_module
from tlcore.model.build import build_classifier
from tlcore.results.evaluation import classification_report
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training import accelerator, feature_cache, feature_store, pipeline, second_phase
from tlcore.training import callbacks as callbacks_module
from tlcore.training import features as features_module
from tlcore.training.config import TrainConfig

_log = logging.getLogger("tlcore.training")


@dataclass
class Outcome:
    state: str  # completed, stopped or failed
    message: str
    feature_cache: str  # "off", or how features were cached


@dataclass
class ResumePoint:
    """Where a stopped or interrupted run continues from."""

    epochs: int  # how many more epochs to train
    epoch_offset: int  # epochs already in metrics.jsonl
    learning_rate: float  # the learning rate the run had reached
    best_key: tuple | None  # (val_accuracy, -val_loss) of the saved best model


@dataclass
class Phase:
    name: str
    trainable_blocks: set
    learning_rate: float
    epochs: int


class TrainingSession:
    """One run's model, data and training loop."""

    def __init__(self, config: TrainConfig, run_dir: pathlib.Path, audit: DatasetAudit, echo=None,
                 resume: "ResumePoint | None" = None):
        self.config = config
        self.echo = echo
        self.resume = resume
        self.run_dir = pathlib.Path(run_dir)
        self.audit = audit
        self.class_names = audit.class_names
        self.image_size = config.resolved_image_size
        keras.utils.set_random_seed(config.seed)
        self.splits = {split: self._split_data(split) for split in SPLITS}
        # Taken before decoding starts: a photo edited during the run must not
        # be stored under its new identity with features of its old pixels.
        self.identities = self._image_identities()
        # Decoding every image once runs in the background while the model is
        # built, when the decoded images fit the memory budget.
        self._decoding = self._start_decoding()
        self.accelerator = accelerator.plan_accelerator()
        accelerator.apply_precision(self.accelerator)
        self.strategy = accelerator.make_strategy(self.accelerator)
        with self._scope():
            self.parts = build_classifier(
                config.backbone,
                num_classes=len(self.class_names),
                image_size=self.image_size,
                augment=config.augment,
                dropout=config.dropout,
                weights=None if config.weights == "none" else "imagenet",
                seed=config.seed,
            )
        self.blocks = blocks_module.backbone_blocks(config.backbone, self.parts.backbone)
        self.trainable_blocks = blocks_module.parse_freeze(config.freeze, [b.name for b in self.blocks])
        self.keeper = callbacks_module.BestModelKeeper(self.parts.model, self.run_dir / run_folder.MODEL_FILE)
        if resume is not None:
            # Continue from the best model so far; only a better epoch replaces it.
            self.parts.model.load_weights(self.run_dir / run_folder.MODEL_FILE)
            self.keeper.state["best_key"] = resume.best_key
        self._views = None  # makes the augmented views of the feature pass (`augmentation.view_maker`), on first use
        self.cached: dict | None = None  # per split features when the current phase trains on features
        self.plan: features_module.FeaturePlan | None = None
        self.feature_cache_note = "off"
        self._trial: second_phase.Trial | None = None  # the second phase's check, when it ran

    def _scope(self):
        """Build and compile inside the distribution strategy, if there is one."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    # ------------------------------------------------------------ data

    def _split_data(self, split: str) -> dict:
        records = self.audit.split_records(split)
        index = {name: i for i, name in enumerate(self.class_names)}
        return {
            "records": records,
            "files": pipeline.decodable_paths(records, self.image_size) if records else [],
            "labels": np.array([index[r.label] for r in records], dtype=int),
        }

    def _image_identities(self) -> dict | None:
        """Each split's images as the feature store knows them; None if a file cannot be read."""
        try:
            return {
                split: [feature_store.image_identity(record.path) for record in self.splits[split]["records"]]
                for split in SPLITS if len(self.splits[split]["labels"])
            }
        except OSError:  # a file vanished since the audit: decoding will say which
            return None

    def _start_decoding(self) -> pipeline.BackgroundDecoding | None:
        """Decode all images once in a background thread, if they fit in memory."""
        files = [path for split in SPLITS for path in self.splits[split]["files"]]
        if pipeline.decoded_bytes(len(files), self.image_size) > pipeline.DEFAULT_DECODE_CACHE_BYTES:
            return None
        return pipeline.BackgroundDecoding(files, self.image_size)

    def _stop_decoding(self) -> None:
        """The images are not needed after all (their features were stored): free the CPU for training."""
        if self._decoding is not None:
            self._decoding.stop()
        self._decoding = None

    def _split_range(self, split: str) -> tuple[int, int]:
        """Where the split's pictures are in the decoded array (train, then validation, then test)."""
        start = sum(len(self.splits[name]["files"]) for name in SPLITS[: SPLITS.index(split)])
        return start, start + len(self.splits[split]["files"])

    def _decoded(self, split: str) -> np.ndarray | None:
        """The split's decoded uint8 images (waiting for the last of them), or None when streaming from files."""
        if self._decoding is None:
            return None
        start, end = self._split_range(split)
        if not self._decoding.wait_until(end):  # stopped early: stream from the files instead
            self._decoding = None
            return None
        return self._decoding.images[start:end]

    def _image_dataset(self, split: str, shuffle: bool, one_hot: bool = True, read_once: bool = False):
        """Batches of (float32 image, label) for `fit`: from memory, or streamed from files.

        `read_once`: the pictures are read a single time (the feature pass), so
        streamed ones are not kept in tf.data's cache: at 20,000 pictures that
        cache held about 650 MB of validation pictures nobody read again.
        """
        import tensorflow as tf

        data = self.splits[split]
        decoded = self._decoded(split)
        if decoded is None:
            dataset = pipeline.make_dataset(
                data["files"], data["labels"], self.image_size, self.config.batch_size, shuffle=shuffle, seed=self.config.seed,
                cache_bytes=0 if read_once else pipeline.DEFAULT_DECODE_CACHE_BYTES,
            )
        else:
            dataset = tf.data.Dataset.from_tensor_slices((decoded, data["labels"].astype("int32")))
            if shuffle:
                dataset = dataset.shuffle(len(decoded), seed=self.config.seed, reshuffle_each_iteration=True)
            dataset = dataset.batch(self.config.batch_size).map(lambda image, label: (tf.cast(image, tf.float32), label))
            dataset = dataset.prefetch(tf.data.AUTOTUNE)
        if one_hot:
            depth = len(self.class_names)
            dataset = dataset.map(lambda image, label: (image, tf.one_hot(label, depth)))
        return dataset

    def _image_batches(self, split: str):
        """Unshuffled float32 image batches for the feature pass."""
        if self._decoding is None:
            return (images.numpy() for images, _ in self._image_dataset(split, shuffle=False, one_hot=False, read_once=True))
        size = self.plan.batch_size if self.plan is not None else features_module.PASS_BATCH_SIZE_CPU
        return self._decoded_batches(split, size)

    def _decoded_batches(self, split: str, size: int):
        """The split's decoded images in batches, each as soon as it is decoded (the pass need not wait for the rest)."""
        decoding = self._decoding
        start, end = self._split_range(split)
        for first in range(start, end, size):
            last = min(first + size, end)
            if not decoding.wait_until(last):
                raise RuntimeError("decoding stopped while the feature pass still needed its pictures")
            yield decoding.images[first:last].astype("float32")

    # ------------------------------------------------------------ phases

    def phases(self) -> list[Phase]:
        config = self.config
        if self.resume is not None:
            # A run whose check dropped the second phase goes on as it ended: the new layer alone.
            blocks = set() if self._second_phase_dropped() else self.trainable_blocks
            return [Phase("resume", blocks, self.resume.learning_rate, self.resume.epochs)]
        if config.two_phase:
            return [
                Phase("head", set(), config.learning_rate, config.head_epochs),
                Phase("fine_tune", self.trainable_blocks, config.fine_tune_learning_rate, config.epochs - config.head_epochs),
            ]
        return [Phase("train", self.trainable_blocks, config.learning_rate, config.epochs)]

    def run(self) -> Outcome:
        """Train every phase; stop early on request, on NaN, or by early stopping."""
        phases = self.phases()
        offset = self.resume.epoch_offset if self.resume else 0
        clock = callbacks_module.RunClock(offset + sum(p.epochs for p in phases), self._steps_per_epoch(),
                                          estimate=self._estimate() if self.resume is None else None)
        clock.epoch_offset = offset
        clock.resumed_epochs = offset
        stopper = callbacks_module.StopOnRequest(self.run_dir)
        nan_guard = callbacks_module.NanGuard()
        for index, phase in enumerate(phases):
            if stopper.requested():  # asked between two phases: the next one does not begin
                break
            clock.start_phase(index)
            blocks_module.apply_freezing(self.parts.backbone, self.blocks, phase.trainable_blocks)
            try:
                model, train_data, val_data = self._prepare_phase(phase)
            except features_module.FeaturePassStopped:
                stopper.stopped = True
                break
            if phase.name == "fine_tune" and self._check_wanted():
                keep = self._check_second_phase()
                if run_record.stop_requested(self.run_dir):
                    stopper.stopped = True
                    break
                if keep:
                    blocks_module.apply_freezing(self.parts.backbone, self.blocks, phase.trainable_blocks)
                else:  # the new layer goes on alone, on pooled features, at its own rate
                    phase = Phase("head", set(), self.config.learning_rate, phase.epochs)
                    model, train_data, val_data = self._head_alone()
            elif phase.name == "fine_tune":
                self._record_second_phase(second_phase.SecondPhaseDecision.unchecked())
            # Inside the strategy's scope: the optimizer creates its variables at the first step.
            with self._scope():
                self._compile(model, phase.learning_rate)
                history = model.fit(
                    train_data,
                    validation_data=val_data,
                    epochs=phase.epochs,
                    callbacks=self._callbacks(clock, phase, stopper, nan_guard),
                    class_weight=self._class_weights() if not self.cached else None,
                    shuffle=False,  # the data shuffles itself, seeded
                    verbose=0,
                )
            clock.epoch_offset += len(history.epoch)
            if stopper.stopped or nan_guard.triggered:
                break
        restored = self.keeper.restore_best()
        if not restored and self.resume is not None:
            # No resumed epoch beat the saved best: keep (and evaluate) that one.
            self.parts.model.load_weights(self.run_dir / run_folder.MODEL_FILE)
        elif not restored:
            if stopper.stopped or nan_guard.triggered:
                return self._early_end(stopper, nan_guard)
            callbacks_module.save_model_atomic(self.parts.model, self.run_dir / run_folder.MODEL_FILE)
        if nan_guard.triggered:
            return Outcome("failed", self._nan_message() + " The best model before that was kept.", self.feature_cache_note)
        if stopper.stopped:
            return Outcome("stopped", "stopped on request; the best model so far was kept.", self.feature_cache_note)
        return Outcome("completed", "training finished.", self.feature_cache_note)

    def _early_end(self, stopper, nan_guard) -> Outcome:
        if nan_guard.triggered:
            from tlcore.errors import TrainingFailedError

            raise TrainingFailedError(self._nan_message())
        return Outcome("stopped", "stopped before the first epoch ended, so no model was saved.", self.feature_cache_note)

    def _nan_message(self) -> str:
        return (
            f"the loss became NaN (not a number) with learning rate {self.config.learning_rate:g}: training diverged. "
            "Try a learning rate 10 times lower."
        )

    def _estimate(self):
        """This machine's estimate for the run, for the time left; None if it cannot be made (never fails the run)."""
        from tlcore.training.estimate import estimate_run

        try:
            return estimate_run(self.config, self.audit)
        except Exception:
            _log.warning("no time estimate for this run", exc_info=True)
            return None

    def _steps_per_epoch(self) -> int:
        return max(1, -(-len(self.splits["train"]["labels"]) // self.config.batch_size))

    def _compile(self, model, learning_rate: float) -> None:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing),
            metrics=["accuracy"],
            jit_compile=self.accelerator.jit_compile,
        )

    def _callbacks(self, clock, phase: Phase, stopper, nan_guard) -> list:
        config = self.config
        result = [
            callbacks_module.MetricsLogger(self.run_dir, clock, phase.name, echo=self.echo),
            stopper,
            nan_guard,
            self.keeper,
        ]
        if config.early_stopping_patience:
            result.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience))
        if config.reduce_lr_patience:
            result.append(
                keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=config.reduce_lr_patience, min_lr=1e-7)
            )
        return result

    def _class_weights(self) -> dict | None:
        if not self.config.class_weights:
            return None
        labels = self.splits["train"]["labels"]
        counts = np.bincount(labels, minlength=len(self.class_names))
        return {i: float(len(labels) / (len(counts) * c)) if c else 0.0 for i, c in enumerate(counts)}

    # ------------------------------------------------------------ feature cache

    def _prepare_phase(self, phase: Phase):
        """The model to fit and its data: cached features when `feature_cache.decide` says so, else images.

        The previous phase's features are dropped first: they belong to that
        phase's cut of the network, so if this phase's pass is stopped half way,
        evaluation reads the pictures with the full model rather than those
        features with this phase's top (which expects another shape).
        """
        self.cached = None
        plan = features_module.plan_feature_cache(self.parts) if self.config.feature_cache == "auto" else None
        decision = feature_cache.decide(
            self.config.feature_cache, plan is not None, int(np.prod(plan.feature_shape)) if plan else 0,
            len(self.splits["train"]["labels"]), len(self.splits["val"]["labels"]) + len(self.splits["test"]["labels"]),
            self.config.augment, feature_cache.MEMORY_BUDGET_BYTES, feature_cache.DISK_BUDGET_BYTES,
            disk_free=_free_bytes(self.run_dir),
        )
        if not decision.cached:
            self.feature_cache_note = decision.reason
            return self.parts.model, self._image_dataset("train", shuffle=True), self._image_dataset("val", shuffle=False)
        plan.batch_size = features_module.pass_batch_size(self.accelerator.gpus)
        self.plan = plan
        self.cached, reused = self._compute_all_features(plan, decision, phase)
        self.feature_cache_note = f"on: {plan.boundary}, {decision.reason}"
        if reused:
            self.feature_cache_note += f"; features of {reused} images reused from an earlier run"
        message = "features of earlier runs reused; training" if reused else "features cached; training"
        run_record.write_status(self.run_dir, "running", message, feature_cache=self.feature_cache_note)
        return self._feature_data(has_views=decision.views > 1)

    def _feature_data(self, has_views: bool):
        """The plan's top model, and batches of the cached training and validation features."""
        return (
            self.plan.top,
            features_module.feature_batches(
                self.cached["train"], self.splits["train"]["labels"], len(self.class_names), self.config.batch_size,
                shuffle=True, seed=self.config.seed, has_views=has_views,
                sample_weights=self._sample_weight_table(),
            ),
            features_module.feature_batches(
                self.cached["val"], self.splits["val"]["labels"], len(self.class_names), self.config.batch_size,
                shuffle=False, seed=self.config.seed,
            ),
        )

    # ------------------------------------------------------------ the second phase, only where it helps

    def _second_phase_dropped(self) -> bool:
        """Whether this run's second-phase check (an earlier part of a resumed run) left the blocks out."""
        decision = run_record.written_status(self.run_dir).get("second_phase")
        return isinstance(decision, dict) and decision.get("keep") is False

    def _check_wanted(self) -> bool:
        """Whether to check the second phase: asked for, and on cached features of the unaugmented pictures."""
        views = feature_cache.views_per_image(self.config.augment)
        return self.config.second_phase_check and self.cached is not None and views == 1

    def _check_second_phase(self) -> bool:
        """Decide from the training pictures alone whether the top blocks learn; record why, in words."""
        run_record.write_status(self.run_dir, "running",
                                "checking on some training pictures whether the top blocks help")
        self._trial = second_phase.make_trial(self.parts, self.plan, self.blocks, self.trainable_blocks, self._compile)
        decision = second_phase.decide(
            self._trial, self.cached["train"], self.splits["train"]["labels"], len(self.class_names),
            learning_rate=self.config.learning_rate, block_learning_rate=self.config.fine_tune_learning_rate,
            batch_size=self.config.batch_size, seed=self.config.seed,
            should_stop=lambda: run_record.stop_requested(self.run_dir),
        )
        self._record_second_phase(decision)
        return decision.keep

    def _record_second_phase(self, decision: second_phase.SecondPhaseDecision) -> None:
        """The decision in the run's record: a metrics row, and in the status, where the Train page reads it."""
        facts = decision.to_dict()
        run_record.append_metrics(self.run_dir, {"type": "second_phase", **facts, "time": time.time()})
        run_record.write_status(self.run_dir, "running", decision.words(), second_phase=facts)

    def _head_alone(self):
        """The new layer alone from here: features pooled once through the frozen top blocks, and its batches."""
        blocks_module.apply_freezing(self.parts.backbone, self.blocks, set())
        self.cached = {split: self._trial.pool(features) for split, features in self.cached.items()}
        self.plan = dataclasses.replace(self.plan, top=self._trial.head, boundary="after global pooling",
                                        feature_shape=tuple(self._trial.head.input_shape[1:]))
        self.feature_cache_note += "; the last layer alone then learned on pooled features"
        return self._feature_data(has_views=False)

    def _sample_weight_table(self):
        weights = self._class_weights()
        return None if weights is None else np.array([weights[i] for i in range(len(self.class_names))], dtype="float32")

    def _compute_all_features(self, plan, decision, phase: Phase) -> tuple[dict, int]:
        """Features of every split: from the store of earlier runs, or computed now.

        Returns:
            The features per split, and how many images' features were reused.
        """
        views = decision.views
        store = self._open_store(plan, phase)
        reused = {}
        if store is not None:
            for split, split_identities in self.identities.items():
                if split != "train" or views == 1:  # augmented views are random per run: never reused
                    found = _quietly(store.lookup, split_identities)
                    if found is not None:
                        reused[split] = found
        to_compute = [split for split in SPLITS if len(self.splits[split]["labels"]) and split not in reused]
        if not to_compute and len(self.phases()) == 1:
            self._stop_decoding()  # no image needs decoding in this run any more
        if to_compute:
            features_module.warm_up(plan)  # while the images may still be decoding
        result = {}
        for split in SPLITS:
            count = len(self.splits[split]["labels"])
            if split in reused:
                result[split] = reused[split]
                run_record.append_metrics(self.run_dir, {"type": "feature_pass", "split": split, "view": 0, "images": count,
                                                   "reused": True, "time": time.time()})
            elif count:
                result[split] = self._compute_split_features(plan, split, views if split == "train" else 1, decision.where)
        if store is not None:
            _quietly(self._keep_features, store, result, views, reused)
        return result, sum(len(found) for found in reused.values())

    def _compute_split_features(self, plan, split: str, views: int, where: str) -> np.ndarray:
        count = len(self.splits[split]["labels"])
        shape = ((views,) if views > 1 else ()) + (count, *plan.feature_shape)
        array = features_module.allocate(shape, self.run_dir / f"features_{split}.npy", on_disk=where == feature_cache.ON_DISK)
        for view in range(views):
            target = array[view] if views > 1 else array
            timing = features_module.compute_features(
                plan, self._image_batches(split), count, target, self.run_dir, split, self._view_change(view)
            )
            run_record.append_metrics(self.run_dir, {"type": "feature_pass", "split": split, "view": view, **timing.to_dict(),
                                               "folded": plan.folded, "time": time.time()})
        return array

    def _view_change(self, view: int):
        """How view number `view` of a training picture is changed: not at all (view 0), mirrored, or at random."""
        if view == 0:
            return None  # the picture as validation and prediction see it
        if self.config.augment == "flip":
            return lambda batch, training=True: keras.ops.flip(keras.ops.convert_to_tensor(batch), axis=2)
        if self._views is None:
            from tlcore.model.augmentation import view_maker

            self._views = view_maker(self.config.augment, self.config.seed)
        return self._views

    def _open_store(self, plan, phase: Phase):
        """The store for this frozen part, or None when not worth it or not possible.

        A frozen part without weights (nothing frozen but the pixel scaling)
        gives features that are only the decoded images, large and cheap to
        make again, so they are not kept.
        """
        if not plan.prefix.weights or self.identities is None:
            return None
        key = _quietly(feature_store.prefix_key, plan.prefix, self.config.backbone, plan.boundary)
        label = _quietly(feature_store.entry_label, self.config.backbone, self.image_size, phase.trainable_blocks)
        return feature_store.FeatureStore(key, label=label) if key else None

    def _keep_features(self, store, result: dict, views: int, reused: dict) -> None:
        """Add the newly computed, unaugmented features to the store for the next run."""
        new = [split for split in self.identities if split not in reused and (split != "train" or views == 1)]
        if new:
            # Row by row from each split (a large split is a memory-mapped file, not to be read whole).
            identities = [item for split in new for item in self.identities[split]]
            store.add(identities, feature_store.ConcatenatedRows([result[split] for split in new]))

    def cleanup(self) -> None:
        """Drop cached features, so the run folder holds the same files either way."""
        self.cached = None
        self._stop_decoding()
        for path in self.run_dir.glob("features_*.npy"):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ evaluation

    def evaluate(self) -> dict:
        """Reports for the validation (and test) images with the final model."""
        reports = {}
        for split in ("val", "test"):
            data = self.splits[split]
            if not len(data["labels"]):
                continue
            if self.cached is not None and split in self.cached:
                probabilities = self.plan.top.predict(self.cached[split], batch_size=self.config.batch_size, verbose=0)
            else:
                probabilities = self.parts.model.predict(self._image_dataset(split, shuffle=False), verbose=0)
            reports[split] = classification_report(
                data["labels"], probabilities, self.class_names, [r.path for r in data["records"]]
            )
            reports[split]["root"] = self.audit.root
        return reports


def _free_bytes(folder: pathlib.Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _quietly(function, *args):
    """Call a feature-store function; on any failure, None: the store is only ever a shortcut.

    The failure is logged as a warning (into the run's worker.log), so a store
    that never helps can be found out, but it never fails the run.
    """
    try:
        return function(*args)
    except Exception:
        _log.warning("the feature store's %s failed; the run goes on without it", getattr(function, "__name__", function),
                     exc_info=True)
        return None
