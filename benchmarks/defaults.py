"""Quality of the defaults: tlcore with every option at its default against the seed recipe.

The seed recipe is the plain one (benchmarks/plain_recipe.py: frozen backbone,
pooling + dense head, Adam, 10 epochs) on exactly the same train/validation
split. Validation sets of these small datasets hold 60-80 images, so one image
is more than a point of accuracy: the comparison is repeated over several seeds
(each seed draws a different split) and the mean is what counts.

Usage: python benchmarks/defaults.py ../shared/datasets/flowers5 ../shared/datasets/weather4 [--seeds 42 1 7]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def last_json(command: list[str], env: dict) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    print("| dataset | seed | seed recipe val acc | tlcore defaults val acc | tlcore epochs | tlcore wall (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = []
    with tempfile.TemporaryDirectory() as runs_dir:
        env.setdefault("TLCORE_HOME", runs_dir)
        for data in args.datasets:
            plain_scores, ours_scores = [], []
            for seed in args.seeds:
                plain = last_json([sys.executable, str(HERE / "plain_recipe.py"), data, "--seed", str(seed)], env)
                ours = last_json([sys.executable, "-m", "tlcore", "train", data, "--seed", str(seed), "--runs-dir", runs_dir, "--json"], env)
                plain_scores.append(plain["val_accuracy"])
                ours_scores.append(ours["val_accuracy"])
                print(f"| {pathlib.Path(data).name} | {seed} | {plain['val_accuracy']:.3f} | {ours['val_accuracy']:.3f} | "
                      f"{ours['epochs_run']} | {ours['wall_s']:.1f} |", flush=True)
            summary.append((pathlib.Path(data).name, statistics.mean(plain_scores), statistics.mean(ours_scores)))
    print()
    for name, plain, ours in summary:
        print(f"- {name}: seed recipe {plain:.3f}, tlcore defaults {ours:.3f} (mean over {len(args.seeds)} seeds, {100 * (ours - plain):+.1f} points)")


if __name__ == "__main__":
    main()
