"""Whether the second phase pays on these pictures, decided from the training pictures alone.

The "best" preset lets the top blocks of the pretrained model learn after the
new last layer has learned alone. On some pictures that scores higher, on
others it does not (and then it only costs time). Before the second phase
starts, a fifth of the training pictures of every class is held out, and on
the rest two short trials run from the same start: the new layer alone, and
the new layer with the top blocks. The blocks are kept when they get at least
`MARGIN` more of the held-out pictures right; otherwise only the last layer
goes on learning.

The validation pictures play no part: they still choose only the best epoch of
the real run. Every trial runs on the features the run has already computed,
so the check costs a fraction of the second phase itself. The model's weights
are as before the check when it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLD_OUT = 0.2  # of every class's training pictures, for the check
MARGIN = 0.02  # the blocks must get this much more of the held-out pictures right
HEAD_EPOCHS = 15  # the new layer alone, from a fresh start, on the other pictures
TRIAL_EPOCHS = 10  # then each trial: the layer alone on, or the blocks too
MIN_HELD_OUT = 10  # fewer held-out pictures than this say nothing: the blocks are kept (the preset's usual choice)


@dataclass(frozen=True)
class SecondPhaseDecision:
    """What the check found and what it decided."""

    keep: bool  # whether the top blocks learn in the second phase
    head_accuracy: float | None  # of the held-out training pictures, the new layer alone
    blocks_accuracy: float | None  # the same with the top blocks learning too
    held_out: int  # how many training pictures the check held out
    checked: bool = True  # False: no check ran, the blocks learn as the config says

    @classmethod
    def unchecked(cls) -> "SecondPhaseDecision":
        """The record of a second phase that runs without a check (`TrainConfig.second_phase_check` off)."""
        return cls(True, None, None, 0, checked=False)

    def words(self) -> str:
        """The decision in one sentence, for the Train page."""
        if not self.checked:
            return ("the top blocks learn too, after the new layer has learned alone, as the settings say "
                    "(whether they help was not checked on these pictures).")
        if self.head_accuracy is None:
            return (f"too few training pictures ({self.held_out} to hold out) to check whether the top blocks help, "
                    "so they learn too, as the preset usually does.")
        scores = (f"{_percent(self.blocks_accuracy)} of {self.held_out} training pictures held out for the check right, "
                  f"against {_percent(self.head_accuracy)} with the last layer alone")
        if self.keep:
            return f"the top blocks helped on these pictures ({scores}), so they learn too."
        return f"the top blocks did not help on these pictures ({scores}), so only the last layer learns."

    def to_dict(self) -> dict:
        return {"keep": self.keep, "checked": self.checked, "head_accuracy": self.head_accuracy,
                "blocks_accuracy": self.blocks_accuracy, "held_out": self.held_out, "words": self.words()}


@dataclass
class Trial:
    """The Keras pieces a check trains, all sharing layers with the run's model.

    top: boundary features -> class probabilities (the top blocks, pooling and the head).
    head: pooled features -> class probabilities (the head alone).
    pool: boundary features -> pooled features, through the frozen top blocks.
    set_blocks_learning: makes the top blocks learn (True) or stay frozen (False).
    compile: compiles a model at a learning rate, as the run does.
    reset_head: gives the head fresh starting weights.
    """

    top: object
    head: object
    pool: object
    set_blocks_learning: object
    compile: object
    reset_head: object


def held_out_part(labels: np.ndarray, seed: int, fraction: float = HOLD_OUT) -> np.ndarray:
    """A mask of about `fraction` of each class's pictures (at least one of a class with two or more)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) >= 2:
            held[members[: max(1, round(fraction * len(members)))]] = True
    return held


def decide(trial: Trial, train_features: np.ndarray, train_labels: np.ndarray, classes: int, *, learning_rate: float,
           block_learning_rate: float, batch_size: int, seed: int, should_stop=None) -> SecondPhaseDecision:
    """Check on held-out training pictures whether the top blocks learning too beats the new layer alone.

    Args:
        trial: the run's models (`Trial`); their weights are restored before returning.
        train_features: the training pictures' features at the freeze boundary (no other split's).
        train_labels: their class numbers.
        classes: how many classes.
        learning_rate: the new layer's rate; block_learning_rate: the second phase's.
        batch_size: as the run's.
        seed: draws the held-out pictures and the trials' order.
        should_stop: called between epochs; when it says True the check ends at once
            (its decision then keeps the blocks, and means nothing: the run is stopping).

    Returns:
        A `SecondPhaseDecision`.
    """
    labels = np.asarray(train_labels, dtype=int)
    held = held_out_part(labels, seed)
    if held.sum() < MIN_HELD_OUT or (~held).sum() < MIN_HELD_OUT:
        return SecondPhaseDecision(True, None, None, int(held.sum()))
    saved = trial.top.get_weights()
    try:
        trial.set_blocks_learning(False)
        pooled = np.asarray(trial.pool(train_features))
        targets = np.eye(classes, dtype="float32")[labels]
        fit = _fitter(labels, targets, held, batch_size, should_stop or (lambda: False))
        trial.reset_head()
        trial.compile(trial.head, learning_rate)
        start = fit(trial.head, pooled, HEAD_EPOCHS, None)
        after_head = trial.top.get_weights()
        head_alone = fit(trial.head, pooled, TRIAL_EPOCHS, start)
        trial.top.set_weights(after_head)
        trial.set_blocks_learning(True)
        trial.compile(trial.top, block_learning_rate)
        with_blocks = fit(trial.top, train_features, TRIAL_EPOCHS, start)
    finally:
        trial.top.set_weights(saved)
    keep = with_blocks[0] - head_alone[0] >= MARGIN - 1e-9  # 0.52 - 0.50 is 0.0199... in floating point
    return SecondPhaseDecision(bool(keep), float(head_alone[0]), float(with_blocks[0]), int(held.sum()))


def _fitter(labels, targets, held, batch_size: int, should_stop):
    """fit(model, features, epochs, best) -> the best (accuracy, -loss) on the held-out pictures so far.

    One `fit` call per trial (a call per epoch costs more than a small trial's epochs themselves); the
    held-out pictures are scored after every epoch, and a stop request ends the trial after the epoch.
    """
    import keras

    learn, check = np.flatnonzero(~held), np.flatnonzero(held)

    def fit(model, features, epochs: int, best):
        if should_stop():
            return best if best is not None else (0.0, 0.0)
        held_features = np.asarray(features[check])
        scores = [] if best is None else [best]

        def score(epoch, logs=None):
            probabilities = np.concatenate([
                keras.ops.convert_to_numpy(model(held_features[start:start + 256], training=False))
                for start in range(0, len(held_features), 256)
            ])
            scores.append(_accuracy_and_loss(probabilities, labels[check]))
            if should_stop():
                model.stop_training = True

        model.fit(np.asarray(features[learn]), targets[learn], batch_size=batch_size, epochs=epochs, shuffle=True,
                  verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=score)])
        return max(scores)

    return fit


def _accuracy_and_loss(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, minus the mean log loss): larger is better in both, compared in that order."""
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return accuracy, float(np.mean(np.log(chosen)))


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def make_trial(parts, plan, blocks, trainable_blocks: set, compile_model) -> Trial:
    """The `Trial` of a model cut at the second phase's boundary (`features.plan_feature_cache`).

    Args:
        parts: the run's `ModelParts`.
        plan: its `FeaturePlan` with the top blocks on the trainable side.
        blocks: the backbone's blocks; trainable_blocks: the names of those the second phase trains.
        compile_model: compile_model(model, learning_rate), as the run compiles.
    """
    import keras

    from tlcore.model import blocks as blocks_module
    from tlcore.model.build import CLASSIFIER_LAYER, DROPOUT_LAYER
    from tlcore.training.features import TOP_BLOCKS_LAYER

    top_blocks = plan.top.get_layer(TOP_BLOCKS_LAYER)
    classifier = parts.model.get_layer(CLASSIFIER_LAYER)
    pooled_input = keras.Input(shape=(int(top_blocks.output.shape[-1]),), name="pooled")
    head = keras.Model(pooled_input, classifier(parts.model.get_layer(DROPOUT_LAYER)(pooled_input)), name="head_alone")
    fresh = classifier.kernel_initializer

    def pool(features):
        rows = [keras.ops.convert_to_numpy(keras.ops.mean(top_blocks(features[i:i + 64], training=False), axis=(1, 2)))
                for i in range(0, len(features), 64)]
        return np.concatenate(rows) if rows else np.zeros((0, pooled_input.shape[-1]), dtype="float32")

    def reset_head():
        classifier.kernel.assign(fresh(tuple(classifier.kernel.shape)))
        classifier.bias.assign(np.zeros(tuple(classifier.bias.shape), dtype="float32"))

    def set_blocks_learning(learning: bool):
        blocks_module.apply_freezing(parts.backbone, blocks, set(trainable_blocks) if learning else set())

    return Trial(plan.top, head, pool, set_blocks_learning, compile_model, reset_head)

