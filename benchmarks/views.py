"""How fast the augmented views' feature pass runs against the plain pass of the same run.

With `--augment light` (or `strong`) the feature pass runs once over the
training pictures as they are (view 0) and once more for each random view.
For each dataset, preset and seed this trains `tlcore train DATA --preset fast
--augment PRESET --epochs 1` in its own process and reads the run's
`feature_pass` rows: the steady rate (pictures per second after the first
batch, which pays the one-time tracing) of view 0 and of the random views.
The issue's target: the views at no less than 0.8 of the plain rate.
It prints a table; it is not a test.

Usage: KERAS_HOME=... python benchmarks/views.py DATA... [--augment light strong] [--seeds 42 1 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from _presets import fresh_home


def view_rates(data: str, augment: str, seed: int, runs_dir) -> tuple[float, float]:
    """(plain rate, mean rate of the random views) of one run, in pictures per second."""
    from tlcore.runs import record

    command = [sys.executable, "-m", "tlcore", "train", data, "--preset", "fast", "--augment", augment, "--epochs", "1",
               "--seed", str(seed), "--runs-dir", str(runs_dir), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TLCORE_SPARE": "0"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    run_dir = max(runs_dir.iterdir(), key=lambda path: path.stat().st_mtime)
    rows = [row for row in record.read_metrics(run_dir) if row.get("type") == "feature_pass" and row["split"] == "train"]
    plain = [row["steady_images_per_s"] for row in rows if row["view"] == 0]
    views = [row["steady_images_per_s"] for row in rows if row["view"] > 0]
    return plain[0], statistics.mean(views)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--augment", nargs="+", default=["light", "strong"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    args = parser.parse_args()
    runs_dir = fresh_home("tlcore-views-") / "runs"
    runs_dir.mkdir()
    print("| dataset | augment | plain pictures/s | views pictures/s | views / plain (per seed) |")
    print("|---|---|---:|---:|---|")
    for data in args.datasets:
        for augment in args.augment:
            measured = [view_rates(data, augment, seed, runs_dir) for seed in args.seeds]
            plain = statistics.mean(rate for rate, _ in measured)
            views = statistics.mean(rate for _, rate in measured)
            each = ", ".join(f"{view / base:.2f}" for base, view in measured)
            print(f"| {os.path.basename(data.rstrip('/'))} | {augment} | {plain:.0f} | {views:.0f} | {views / plain:.2f} ({each}) |",
                  flush=True)


if __name__ == "__main__":
    main()
