"""Keras callbacks that connect a training run to its run directory.

Small callbacks sharing one idea (as fastai's tracker callbacks do): each does
one job and talks to the outside world only through files in the run folder.

- `MetricsLogger`  appends epoch and progress rows to metrics.jsonl, keeps the
  status's epoch, batch and ETA fresh.
- `StopOnRequest`  ends training at the next batch when the STOP file appears.
- `BestModelKeeper` remembers the best weights, saves the best model atomically,
  and restores those weights when training ends.
- `NanGuard`       stops on a NaN or infinite loss and says so.
"""

from __future__ import annotations

import math
import os
import pathlib
import statistics
import time

import keras

from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training.estimate import remaining_after

PROGRESS_INTERVAL_S = 0.5
# Saving a full model takes most of a second on a laptop CPU; when epochs are
# very fast (cached features) an improved model is written at most this often,
# and always once more at the end of training. A better model waiting to be
# written is written as soon as this much time has passed since the last save
# (checked after every batch), so a killed run's model.keras is the best model
# seen up to at most this many seconds before the kill, and a short run pays
# for one save.
SAVE_INTERVAL_S = float(os.environ.get("TLCORE_SAVE_INTERVAL_S", "10"))


def save_model_atomic(model, path: pathlib.Path) -> None:
    """Save a .keras file so that a crash never leaves a broken one behind."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.stem}.partial.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        # A full disk or a crash mid-write: drop the partial file, keep the previous model.
        temporary.unlink(missing_ok=True)
        raise


class RunClock:
    """Counts epochs across phases and says how long the run has left.

    The time left is the run's estimate (`tlcore.training.estimate`) with the
    current phase's epochs timed as this run measures them: after two epochs,
    the median epoch without the first (which also traced the steps); after
    one, the steady time of its batches (each batch after the first, training
    and validation). An epoch that traced its steps is not taken as the pace
    of the epochs that will not.
    """

    def __init__(self, total_epochs: int, steps_per_epoch: int, estimate=None):
        self.total_epochs = total_epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.started = time.monotonic()
        self.epoch_offset = 0
        self.resumed_epochs = 0  # epochs done by an earlier process (resume), not timed here
        self.estimate = estimate  # a RunEstimate, or None (then the pace of this run alone)
        self.phase_index = 0
        self.phase_epochs_done = 0
        self.slowest_epoch_s = 0.0  # in any phase: how long this run may fairly be silent (`tlcore.runs.hung`)
        self._epoch_seconds: list[float] = []
        self._train_batch_ends: list[float] = []
        self._test_batch_ends: list[float] = []

    def start_phase(self, index: int) -> None:
        self.phase_index = index
        self.phase_epochs_done = 0
        self._epoch_seconds = []

    def batch_ended(self, testing: bool = False) -> None:
        (self._test_batch_ends if testing else self._train_batch_ends).append(time.monotonic())

    def epoch_started(self) -> None:
        self._train_batch_ends, self._test_batch_ends = [], []

    def epoch_ended(self, seconds: float) -> None:
        self._epoch_seconds.append(seconds)
        self.phase_epochs_done += 1
        self.slowest_epoch_s = max(self.slowest_epoch_s, seconds)

    def steady_epoch_s(self) -> float | None:
        """One epoch's seconds without tracing, as measured in this phase; None before a whole epoch."""
        if len(self._epoch_seconds) >= 2:
            return statistics.median(self._epoch_seconds[1:])
        if not self._epoch_seconds:
            return None
        train_step = _median_interval(self._train_batch_ends)
        if train_step is None:
            return self._epoch_seconds[0]
        test_step = _median_interval(self._test_batch_ends) or train_step / 2
        steady = self.steps_per_epoch * train_step + max(1, len(self._test_batch_ends)) * test_step
        return min(self._epoch_seconds[0], steady)

    def remaining_seconds(self, epoch_index: int, batch: int) -> float | None:
        """Seconds left, with `batch` batches of the current epoch done; None before any step."""
        steady = self.steady_epoch_s()
        if self.estimate is not None and (steady is not None or self.estimate.phases):
            left = remaining_after(self.estimate, self.phase_index, self.phase_epochs_done, steady)
            per_epoch = steady if steady is not None else self.estimate.phases[
                min(self.phase_index, len(self.estimate.phases) - 1)].per_epoch_s
            return max(0.0, left - per_epoch * batch / self.steps_per_epoch)
        done = (epoch_index - self.resumed_epochs) * self.steps_per_epoch + batch
        total = (self.total_epochs - self.resumed_epochs) * self.steps_per_epoch
        elapsed = time.monotonic() - self.started
        if done <= 0 or elapsed <= 0:
            return None
        per_step = steady / self.steps_per_epoch if steady is not None else elapsed / done
        return per_step * max(0, total - done)


def _median_interval(times: list[float]) -> float | None:
    """The median time between consecutive events; None with fewer than two."""
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    return statistics.median(gaps) if gaps else None




class MetricsLogger(keras.callbacks.Callback):
    """Append epoch rows (and throttled progress rows) to metrics.jsonl."""

    def __init__(self, run_dir: pathlib.Path, clock: RunClock, phase: str, echo=None):
        super().__init__()
        self.echo = echo
        self.run_dir = pathlib.Path(run_dir)
        self.clock = clock
        self.phase = phase
        self._last_progress = 0.0
        self._epoch = 0
        self._epoch_started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.monotonic()
        self.clock.epoch_started()

    def on_test_batch_end(self, batch, logs=None):
        self.clock.batch_ended(testing=True)

    def on_train_batch_end(self, batch, logs=None):
        self.clock.batch_ended()
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        global_epoch = self.clock.epoch_offset + self._epoch
        eta = self.clock.remaining_seconds(global_epoch, batch + 1)
        row = {
            "type": "progress",
            "phase": self.phase,
            "epoch": global_epoch + 1,
            "epochs": self.clock.total_epochs,
            "batch": batch + 1,
            "batches": self.clock.steps_per_epoch,
            "loss": _number((logs or {}).get("loss")),
            "accuracy": _number((logs or {}).get("accuracy")),
            "eta_s": eta,
            "time": time.time(),
        }
        run_record.append_metrics(self.run_dir, row)
        run_record.write_status(
            self.run_dir, "running", f"training epoch {row['epoch']} of {row['epochs']}",
            epoch=row["epoch"], epochs=row["epochs"], batch=row["batch"], batches=row["batches"], eta_s=eta,
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        global_epoch = self.clock.epoch_offset + epoch
        row = {
            "type": "epoch",
            "phase": self.phase,
            "epoch": global_epoch + 1,
            "loss": _number(logs.get("loss")),
            "accuracy": _number(logs.get("accuracy")),
            "val_loss": _number(logs.get("val_loss")),
            "val_accuracy": _number(logs.get("val_accuracy")),
            "lr": _number(_current_learning_rate(self.model)),
            "epoch_s": time.monotonic() - self._epoch_started,
            "partial": bool(getattr(self.model, "stop_training", False)),
            "time": time.time(),
        }
        run_record.append_metrics(self.run_dir, row)
        if self.echo:
            self.echo(row)
        self.clock.epoch_ended(row["epoch_s"])
        eta = self.clock.remaining_seconds(global_epoch + 1, 0)
        run_record.write_status(
            self.run_dir, "running", f"finished epoch {row['epoch']} of {self.clock.total_epochs}",
            epoch=row["epoch"], epochs=self.clock.total_epochs, batch=0, eta_s=eta,
            slowest_epoch_s=self.clock.slowest_epoch_s,
        )


class StopOnRequest(keras.callbacks.Callback):
    """End training at the next batch once `tlcore stop` (or the app) asked."""

    def __init__(self, run_dir: pathlib.Path):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.stopped = False

    def requested(self) -> bool:
        """Whether a stop was asked for (checked between phases too); remembers that it was."""
        if run_record.stop_requested(self.run_dir):
            self.stopped = True
        return self.stopped

    def on_train_batch_end(self, batch, logs=None):
        if self.requested():
            self.model.stop_training = True


class NanGuard(keras.callbacks.Callback):
    """Stop as soon as the loss is NaN or infinite, and remember that it happened."""

    def __init__(self):
        super().__init__()
        self.triggered = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.triggered = True
            self.model.stop_training = True


class BestModelKeeper(keras.callbacks.Callback):
    """Track the best epoch, save the best model, restore its weights at the end.

    The best epoch has the highest validation accuracy; ties go to the lower
    validation loss. `self.model` may be a smaller model that shares layers with
    `full_model` (training on cached features); the weights are shared, so saving
    `full_model` saves what was just learned.

    The best weights are copied in full once; after that only the variables
    that some training phase could change (those trainable in any `fit` so far)
    are copied again. With a frozen backbone that is the head's two arrays
    instead of the whole network, at every better epoch.
    """

    def __init__(self, full_model, model_path: pathlib.Path, state: dict | None = None):
        super().__init__()
        self.full_model = full_model
        self.model_path = pathlib.Path(model_path)
        self.state = state if state is not None else {"best_key": None, "best_epoch": None}
        self._best_weights: list | None = None
        self._changing: set[int] = set()  # ids of variables trainable in some fit so far
        self._dirty = False
        self._last_save = time.monotonic()

    def on_train_begin(self, logs=None):
        self._changing.update(id(variable) for variable in self.full_model.trainable_weights)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        accuracy, loss = logs.get("val_accuracy"), logs.get("val_loss")
        if accuracy is not None and loss is not None and math.isfinite(float(loss)):
            key = (float(accuracy), -float(loss))
            if self.state["best_key"] is None or key > tuple(self.state["best_key"]):
                self.state.update(best_key=key, best_epoch=epoch, best_val_accuracy=float(accuracy), best_val_loss=float(loss))
                self._best_weights = self._current_weights(self._best_weights)
                self._dirty = True
        self._save_if_due()

    def on_train_batch_end(self, batch, logs=None):
        self._save_if_due()

    def _save_if_due(self) -> None:
        """Write a better model that is waiting once the save interval has passed since the last save."""
        if self._dirty and time.monotonic() - self._last_save >= SAVE_INTERVAL_S:
            self.save_best()

    def _current_weights(self, previous: list | None) -> list:
        """The model's weights as arrays, reusing `previous` for those no fit can have changed."""
        if previous is None or not self._changing:
            return self.full_model.get_weights()
        result = list(previous)
        for index, variable in enumerate(self.full_model.weights):
            if id(variable) in self._changing:
                result[index] = keras.ops.convert_to_numpy(variable)
        return result

    def _assign(self, values: list) -> None:
        """Put `values` into the model, skipping the variables no fit can have changed."""
        if not self._changing:
            self.full_model.set_weights(values)
            return
        for variable, value in zip(self.full_model.weights, values, strict=True):
            if id(variable) in self._changing:
                variable.assign(value)

    def save_best(self, keep_best_loaded: bool = False) -> None:
        """Write the best weights seen so far as model.keras (atomically).

        Args:
            keep_best_loaded: leave the best weights in the model afterwards
                (end of training) instead of putting the current ones back.
        """
        if self._best_weights is None:
            return
        current = None if keep_best_loaded else self._current_weights(self._best_weights)
        self._assign(self._best_weights)
        if self._dirty:
            save_model_atomic(self.full_model, self.model_path)
            self._dirty = False
            self._last_save = time.monotonic()
            run_folder.write_model_facts(self.model_path.parent, {
                "epoch": _epoch_number(self.state.get("best_epoch")),
                "val_accuracy": self.state.get("best_val_accuracy"),
                "val_loss": self.state.get("best_val_loss"),
                "saved_at": time.time(),
            })
        if current is not None:
            self._assign(current)

    def restore_best(self) -> bool:
        """Load the best weights into the model and make sure they are saved.

        Returns:
            False when no epoch was measured (nothing to restore).
        """
        if self._best_weights is None:
            return False
        self.save_best(keep_best_loaded=True)
        return True


def _epoch_number(epoch_index) -> int | None:
    """The 1-based epoch number of a 0-based Keras epoch index (None when unknown)."""
    return None if epoch_index is None else int(epoch_index) + 1


def _current_learning_rate(model) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # an optimizer without a plain learning rate
        return None


def _number(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
