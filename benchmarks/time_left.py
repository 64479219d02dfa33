"""How honest the time left is while a run trains: each progress row's ETA against the time the run really had left.

Trains the fast and the best preset on each dataset (seed 42, a fresh
TLCORE_HOME shared by the runs, so later runs use earlier runs' measurements),
then reads every progress row written after the run's first epoch and divides
its `eta_s` by the seconds from that row to the run's end (the issue's target:
never more than 1.5). Prints the worst and the median ratio per run.

Usage: python benchmarks/time_left.py ../shared/datasets/flowers5 ../shared/datasets/weather4
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def ratios(run_dir: pathlib.Path) -> list[float]:
    from tlcore.runs import record

    rows = record.read_metrics(run_dir)
    ended = json.loads((run_dir / "status.json").read_text())["ended_at"]
    first_epoch_end = min(row["time"] for row in rows if row.get("type") == "epoch")
    return [row["eta_s"] / (ended - row["time"]) for row in rows
            if row.get("type") == "progress" and row.get("eta_s") is not None and row["time"] > first_epoch_end
            and ended - row["time"] > 0.5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    from _presets import fresh_home, preset_config

    runs_dir = fresh_home("tlcore-time-left-") / "runs"
    from tlcore.training.run import train

    print("| dataset | preset | progress rows after the first epoch | worst ETA / true | median |")
    print("|---|---|---:|---:|---:|")
    for data in args.datasets:
        for preset in ("fast", "best"):
            result = train(preset_config(data, preset)[0], runs_dir=runs_dir)
            found = ratios(pathlib.Path(result.run_dir))
            worst = f"{max(found):.2f}" if found else "-"
            median = f"{statistics.median(found):.2f}" if found else "-"
            print(f"| {pathlib.Path(data).name} | {preset} | {len(found)} | {worst} | {median} |", flush=True)


if __name__ == "__main__":
    main()
