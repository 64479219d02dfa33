"""Quality of the defaults: the plain recipe, the fast preset and the default ("best") preset, on the same splits.

The plain recipe is benchmarks/plain_recipe.py (frozen backbone, pooling +
dense head, Adam, 10 epochs) on exactly the same train/validation split.
Validation sets of these small datasets hold 60-80 images, so one image is
more than a point of accuracy: the comparison is repeated over several seeds
(each seed draws a different split) and the mean is what counts.

Every tlcore run is `tlcore train DATA --preset P --seed S --json` in a process
of its own, timed from outside (Python start-up and the TensorFlow import
included), next to the time tlcore predicted before it started (`estimate_run`,
the whole command) and the pretrained network the preset chose (the strongest
whose run fits the plain recipe's time here; its reasons and every candidate's
estimate go to stderr). A network this machine has not measured yet is measured
before the prediction, on 32 of the pictures, outside the timed command. All runs share one TLCORE_HOME, so the estimate learns
from the runs before it, as on a user's machine; the feature store is emptied
before each run, so no run reuses another's features.

Usage: python benchmarks/defaults.py ../shared/datasets/flowers5 ../shared/datasets/weather4 [DEMO] [--seeds 42 1 7]
Without a dataset argument "demo" means the built-in demo (drawn if missing).
The candidates' ImageNet weights must be in the Keras cache (a copy of
../shared/keras-weights as $KERAS_HOME/models), or the presets choose among those that are.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PRESETS = ("fast", "best")


def last_json(command: list[str], env: dict) -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def predicted(data: str, preset: str, seed: int):
    """What tlcore predicts for `tlcore train DATA --preset P --seed S` (the whole command): (seconds, measured, plan).

    A network this computer has not measured yet is measured here first (and kept), so the command finds the
    figure and chooses as predicted; the seconds that measuring took are not in the command's wall time.
    """
    from _presets import planned_run

    from tlcore.training.estimate import estimate_run

    config, audit, planned = planned_run(data, preset, seed, measure=True)
    estimate = estimate_run(config, audit)
    return estimate.command_line_total_s, estimate.measured, planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="dataset folders, or 'demo'")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="tlcore-defaults-")
    os.environ["TLCORE_HOME"] = home
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    from tlcore import paths
    from tlcore.data.demo import ensure_demo_dataset

    print("Walls: the whole process; in brackets, the ratio to the plain recipe's wall in the same row.\n")
    print("| dataset | seed | plain val acc | plain wall (s) | fast val acc | fast wall (s) | fast predicted (s) "
          "| fast network | best val acc | best wall (s) | best predicted (s) | best network |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    summary = []
    try:
        for data in args.datasets:
            data = str(ensure_demo_dataset()) if data == "demo" else data
            scores = {"plain": [], "fast": [], "best": []}
            walls = {"plain": [], "fast": [], "best": []}
            errors = {"fast": [], "best": []}
            for seed in args.seeds:
                plain, plain_wall = last_json([sys.executable, str(HERE / "plain_recipe.py"), data, "--seed", str(seed)], env)
                scores["plain"].append(plain["val_accuracy"])
                walls["plain"].append(plain_wall)
                cells = [f"{plain['val_accuracy']:.3f}", f"{plain_wall:.1f}"]
                for preset in PRESETS:
                    shutil.rmtree(paths.cache_dir() / "features", ignore_errors=True)
                    seconds, measured, planned = predicted(data, preset, seed)
                    ours, wall = last_json([sys.executable, "-m", "tlcore", "train", data, "--preset", preset,
                                            "--seed", str(seed), "--json"], env)
                    ran = json.loads((pathlib.Path(ours["run_dir"]) / "config.json").read_text())
                    if ran["backbone"] != planned.config.backbone or ran["epochs"] != planned.config.epochs:
                        print(f"  note: the command chose {ran['backbone']} ({ran['epochs']} epochs), the prediction "
                              f"{planned.config.backbone} ({planned.config.epochs} epochs)", file=sys.stderr)
                    scores[preset].append(ours["val_accuracy"])
                    walls[preset].append(wall)
                    errors[preset].append(seconds / wall - 1)
                    shape = f"{ran['freeze']}, {ran['epochs']} epochs" + (f" ({ran['head_epochs']} head)" if ran["two_phase"] else "")
                    cells += [f"{ours['val_accuracy']:.3f}", f"{wall:.1f} ({wall / plain_wall:.2f}x)", f"{seconds:.1f}" + ("" if measured else " (guess)"),
                              f"{ran['backbone']} ({shape})"]
                    if planned.choice is not None:
                        print(f"  {preset}, seed {seed}: {planned.choice.describe()} Budget "
                              f"{planned.choice.budget_s:.1f} s; " + ", ".join(
                                  f"{option.name} {option.estimate_s:.1f} s at {option.images_per_s:.0f}/s"
                                  for option in planned.choice.options), file=sys.stderr, flush=True)
                print(f"| {pathlib.Path(data).name} | {seed} | " + " | ".join(cells) + " |", flush=True)
            summary.append((pathlib.Path(data).name, scores, walls, errors))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print()
    mean = statistics.mean
    for name, scores, walls, errors in summary:
        plain = mean(scores["plain"])
        print(f"- {name} (means over {len(args.seeds)} seeds): plain {plain:.3f} in {mean(walls['plain']):.1f} s; "
              + "; ".join(f"{preset} {mean(scores[preset]):.3f} ({100 * (mean(scores[preset]) - plain):+.1f} points) in "
                          f"{mean(walls[preset]):.1f} s ({mean(walls[preset]) / mean(walls['plain']):.2f}x plain; "
                          f"prediction off by {', '.join(f'{100 * e:+.0f} %' for e in errors[preset])})"
                          for preset in PRESETS))


if __name__ == "__main__":
    main()
