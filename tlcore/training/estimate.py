"""How long a run will take on this machine, before it starts: the Train page's time estimate.

The estimate is built from what this machine measured on its earlier runs
(their `metrics.jsonl`: the feature pass's pictures per second, each epoch's
seconds), and from a first guess before any run. It needs no TensorFlow, so
the page can show it while the user is still choosing settings.

The first guess was measured on a 2-core laptop CPU with the default backbone
(MobileNetV2 0.35 at 224 px); a bigger backbone is assumed slower by the
square root of its extra parameters, and a larger picture by its extra pixels.
"""

from __future__ import annotations

import pathlib
import statistics
from dataclasses import dataclass

from tlcore.model.backbones import get_backbone
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import record as run_record
from tlcore.training.feature_cache import views_per_image

# First guesses, before this machine has run anything (2-core laptop CPU, default backbone).
GUESS_FEATURE_IMAGES_PER_S = 45.0  # pictures per second through the frozen default backbone
GUESS_REFERENCE_PARAMS = 410_208  # the default backbone's parameter count, which that rate was measured with
GUESS_CACHED_EPOCH_S_PER_IMAGE = 0.012  # one epoch of the new layer on cached features, per training picture
GUESS_TRAINING_COST = 3.0  # a training step through the network costs about 3 forward passes
EARLIER_RUNS_READ = 10  # the most recent runs of the same backbone that the measurement reads


@dataclass(frozen=True)
class MachineSpeed:
    """What this machine measured for one backbone: None where it has not measured it yet."""

    images_per_s: float | None
    epoch_s_per_image: float | None


@dataclass(frozen=True)
class RunEstimate:
    """A run's expected time, in parts, and where the numbers come from.

    Attributes:
        getting_ready_s: the feature pass (0 when every feature was kept).
        per_epoch_s: one epoch.
        total_s: getting ready plus every planned epoch (early stopping may end sooner).
        kept_images: pictures whose features an earlier run kept.
        measured: True when the speeds come from this machine's earlier runs.
        cached: True when the frozen part's features are computed once.
    """

    getting_ready_s: float
    per_epoch_s: float
    total_s: float
    kept_images: int
    measured: bool
    cached: bool

    def describe(self) -> str:
        """The estimate in words, as the Train page shows it."""
        duration = run_history.format_duration
        source = "measured on your earlier runs" if self.measured else "a rough guess until your first run"
        if not self.cached:
            text = f"about {duration(self.per_epoch_s)} per epoch"
        else:
            if self.kept_images and self.getting_ready_s < 1:
                ready = f"no feature pass (the features of its {self.kept_images} pictures were kept from an earlier run)"
            elif self.kept_images:
                ready = f"about {duration(self.getting_ready_s)} to get ready ({self.kept_images} pictures' features were kept)"
            else:
                ready = f"about {duration(self.getting_ready_s)} to get ready"
            text = f"{ready}, then about {duration(max(self.per_epoch_s, 1))} per epoch"
        return f"Time: {text}; at most about {duration(self.total_s)} in all ({source})."


def measured_speed(backbone: str, freeze: str) -> MachineSpeed:
    """Pictures per second and seconds per epoch per picture, from this machine's recent runs of `backbone`."""
    speeds, epoch_seconds = [], []
    rows = [row for row in run_history.list_runs() if row.get("backbone") == backbone][:EARLIER_RUNS_READ]
    for row in rows:
        run_dir = pathlib.Path(row["run_dir"])
        config = run_folder.read_json(run_dir / run_folder.CONFIG_FILE, {}) or {}
        train_images = len((run_folder.read_json(run_dir / run_folder.SPLIT_FILE, {}) or {}).get("train", []))
        for metric in run_record.read_metrics(run_dir):
            if metric.get("type") == "feature_pass" and metric.get("images_per_s"):
                speeds.append(metric["images_per_s"])
            if metric.get("type") == "epoch" and metric.get("epoch_s") and config.get("freeze") == freeze and train_images:
                epoch_seconds.append(metric["epoch_s"] / train_images)
    return MachineSpeed(
        images_per_s=statistics.median(speeds) if speeds else None,
        epoch_s_per_image=statistics.median(epoch_seconds) if epoch_seconds else None,
    )


def guessed_images_per_s(backbone: str, image_size: int) -> float:
    """The first guess of the frozen pass's speed for a backbone and picture size."""
    spec = get_backbone(backbone)
    size_factor = (spec.input_size / image_size) ** 2
    return GUESS_FEATURE_IMAGES_PER_S * (GUESS_REFERENCE_PARAMS / spec.params) ** 0.5 * size_factor


def estimate_run(config, audit, kept_images: int = 0, speed: MachineSpeed | None = None) -> RunEstimate:
    """Estimate how long a run of `config` on `audit`'s pictures takes on this machine.

    Args:
        config: the run's `TrainConfig`.
        audit: its `DatasetAudit`.
        kept_images: pictures whose features an earlier run kept (`kept_for_run`).
        speed: this machine's measured speed; read from its earlier runs when None.

    Returns:
        A `RunEstimate`; `describe()` says it in words.
    """
    speed = speed or measured_speed(config.backbone, config.freeze)
    train_count, val_count = len(audit.split_records("train")), len(audit.split_records("val"))
    rate = speed.images_per_s or guessed_images_per_s(config.backbone, config.resolved_image_size)
    measured = speed.images_per_s is not None
    if config.freeze == "all":
        views = views_per_image(config.augment)
        ready = max(0, train_count * views + val_count - kept_images) / rate
        per_epoch = (speed.epoch_s_per_image or GUESS_CACHED_EPOCH_S_PER_IMAGE) * train_count
        total = ready + per_epoch * config.epochs
        return RunEstimate(ready, per_epoch, total, kept_images, measured, cached=True)
    per_epoch = (speed.epoch_s_per_image or GUESS_TRAINING_COST / rate) * train_count + val_count / rate
    return RunEstimate(0.0, per_epoch, per_epoch * config.epochs, kept_images, measured, cached=False)
