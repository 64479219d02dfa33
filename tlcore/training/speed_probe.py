"""How fast this computer runs a backbone, measured on a handful of the user's pictures, and kept.

The presets choose the backbone by this computer's speed (`backbone_choice`).
A backbone this computer has trained with has its speed in those runs'
records (`estimate.measured_speed`); for one it has not, `measure_rate` times
the feature pass (decoding the pictures and running the frozen backbone, as a
run's first pass does) on `PROBE_PICTURES` of the user's pictures: seconds.
The figure is kept in `$TLCORE_HOME/speeds.json` (the machine's, like its
training slots), so it is measured once; `measured_speed` reads it until a run
of that backbone has measured its own.

The weights do not change the speed, so the probe builds the backbone with
random ones: a backbone whose weights would need a download is measured before
anyone is asked to download it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable

from tlcore import paths
from tlcore.runs import folder as run_folder

PROBE_PICTURES = 32  # two batches of the CPU pass after a warm-up call: a few seconds even for MobileNetV2 at full width
SPEEDS_FILE = "speeds.json"
PROBE_TIMEOUT_S = 120.0  # a probe in its own process: starting Python and TensorFlow, building, two batches


def speeds_path():
    return paths.machine_home() / SPEEDS_FILE


def _key(backbone: str, image_size: int) -> str:
    return f"{backbone}@{image_size}"


def kept_rate(backbone: str, image_size: int) -> float | None:
    """Pictures per second a probe measured for this backbone and size on this computer; None when never measured."""
    entry = (run_folder.read_json(speeds_path(), {}) or {}).get(_key(backbone, image_size))
    try:
        rate = float(entry["images_per_s"])
    except (TypeError, KeyError, ValueError):
        return None
    return rate if rate > 0 else None


def keep_rate(backbone: str, image_size: int, images_per_s: float, pictures: int) -> None:
    """Record a probe's figure (replacing an earlier one for the same backbone and size)."""
    kept = run_folder.read_json(speeds_path(), {}) or {}
    kept = kept if isinstance(kept, dict) else {}
    kept[_key(backbone, image_size)] = {"images_per_s": images_per_s, "pictures": pictures, "measured_at": time.time()}
    speeds_path().parent.mkdir(parents=True, exist_ok=True)
    run_folder.write_json_atomic(speeds_path(), kept)


def measure_rate(backbone: str, image_size: int, file_paths: list[str]) -> float:
    """This computer's feature-pass pictures per second for `backbone`, on (up to) `PROBE_PICTURES` of these files.

    Each picture is decoded and resized as a run's pass does it, then the
    frozen backbone (batch normalization folded) runs over them, all timed
    after one warm-up of each (a run pays its one-time tracing apart, and
    the estimate counts that apart too). Random weights: the speed is the same.
    """
    import numpy as np
    import tensorflow as tf

    from tlcore.model.blocks import apply_freezing, backbone_blocks
    from tlcore.model.build import build_classifier
    from tlcore.training import features, pipeline

    chosen = list(file_paths)[:PROBE_PICTURES]
    if not chosen:
        raise ValueError("measuring a backbone's speed needs at least one picture")
    parts = build_classifier(backbone, num_classes=2, image_size=image_size, weights=None)
    apply_freezing(parts.backbone, backbone_blocks(backbone, parts.backbone), set())  # the whole backbone frozen
    plan = features.plan_feature_cache(parts)
    features.warm_up(plan)
    decode = tf.function(lambda path: pipeline.decode_and_resize(path, image_size), reduce_retracing=True)
    decode(tf.constant(chosen[0]))  # traced once, as the run's decoding is
    started = time.monotonic()
    images = np.stack([decode(tf.constant(path)).numpy() for path in chosen])
    for start in range(0, len(images), plan.batch_size):
        np.asarray(plan.forward(images[start : start + plan.batch_size]))
    return len(chosen) / max(time.monotonic() - started, 1e-6)


def measure_and_keep(backbone: str, image_size: int, file_paths: list[str]) -> float:
    """`measure_rate`, kept for the next choice."""
    rate = measure_rate(backbone, image_size, file_paths)
    keep_rate(backbone, image_size, rate, min(len(file_paths), PROBE_PICTURES))
    return rate


def sample_files(audit, count: int = PROBE_PICTURES) -> list[str]:
    """Up to `count` of the run's training pictures, spread over the whole list (every class, every kind of file)."""
    paths_ = [record.path for record in audit.split_records("train")]
    step = max(1, len(paths_) // count)
    return paths_[::step][:count]


PROBE_SWITCH_ENV_VAR = "TLCORE_SPEED_PROBE"  # "off": never measure; recorded figures or first guesses decide (tests)


def probing_allowed() -> bool:
    """False when `$TLCORE_SPEED_PROBE` is "off": the choice then uses recorded figures or first guesses only."""
    return os.environ.get(PROBE_SWITCH_ENV_VAR, "").strip().lower() != "off"


def prober(audit) -> Callable[[str, int], float | None]:
    """`measure(backbone, image_size)` on a handful of `audit`'s pictures, in this process (it imports Keras)."""
    files = sample_files(audit) if probing_allowed() else []
    return lambda backbone, image_size: measure_and_keep(backbone, image_size, files) if files else None


def process_prober(audit, timeout_s: float = PROBE_TIMEOUT_S) -> Callable[[str, int], float | None]:
    """The same in a process of its own (`tlcore measure-speed`), for the app's server, which never imports Keras.

    It returns None when the measurement fails (the choice then uses the first guess).
    """
    files = sample_files(audit) if probing_allowed() else []

    def measure(backbone: str, image_size: int) -> float | None:
        if not files:
            return None
        command = [sys.executable, "-m", "tlcore", "measure-speed", backbone, "--image-size", str(image_size), *files]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "TLCORE_HOME": str(paths.machine_home())})
            return float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError, TypeError):
            return None  # the choice goes on with the first guess for it; a measurement is a refinement

    return measure
