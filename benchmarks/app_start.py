"""How long the app's user waits after clicking Start training: a fresh worker against a spare.

The app starts each run with `tlcore.start_training` (a process of its own) and
polls the run folder. This times, from that call, the first metrics line (the
first progress the Train page can draw) and the end of the run, for:
  - a fresh worker process (`TLCORE_SPARE=0`), which imports TensorFlow first;
  - a spare (`tlcore.spare`), started when the Train page opened and ready by
    the time the user clicks.
Each in a fresh TLCORE_HOME: a first try, then a second try on the same
photos (whose frozen-layer features the first try kept).

Usage: python benchmarks/app_start.py ../shared/datasets/flowers5 [--epochs 10] [--repeats 3]
Needs the MobileNetV2 0.35 ImageNet weights in the Keras cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def wait_for(condition, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit("timed out")


def one_run(config) -> dict:
    """Start a run as the Train page does; time its first metrics line and its end."""
    from tlcore.runs import folder as run_folder
    from tlcore.runs import record as run_record
    from tlcore.training.launch import start_training

    started = time.monotonic()
    run_dir = start_training(config)
    first = wait_for(lambda: run_record.read_metrics(run_dir) and time.monotonic())
    wait_for(lambda: run_record.read_status(run_dir).get("state") in ("completed", "failed", "stopped"))
    ended = time.monotonic()
    pid = int((run_dir / run_folder.PID_FILE).read_text())
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
    status = run_record.read_status(run_dir)
    return {"first_metrics_s": first - started, "finished_s": ended - started, "state": status["state"],
            "val_accuracy": status.get("val_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds; report medians")
    args = parser.parse_args()
    from tlcore.runs import spare
    from tlcore.training.config import TrainConfig

    config = TrainConfig(data=os.path.abspath(args.data), backbone="mobilenetv2_035", epochs=args.epochs,
                         freeze="all", augment="none")
    results = {}
    for _ in range(max(1, args.repeats)):
        for mode in ("fresh worker", "spare"):  # alternating, so a slow spell of the machine slows both alike
            with tempfile.TemporaryDirectory() as home:
                os.environ["TLCORE_HOME"] = home
                os.environ["TLCORE_SPARE"] = "0" if mode == "fresh worker" else "1"
                for attempt in ("first try", "second try"):
                    if mode == "spare":
                        waiting = wait_for(spare.ensure_spare)  # the Train page opens
                        wait_for(lambda waiting=waiting: waiting.ready)  # the user chooses settings meanwhile
                    results.setdefault((mode, attempt), []).append(one_run(config))
                leftover = spare.current()
                if leftover is not None:
                    leftover.end()
                    leftover.process.wait()
                    spare._spare = None

    print(f"\nDataset: {args.data}; MobileNetV2 0.35 at 224 px; --freeze all; {args.epochs} epochs; "
          f"median of {args.repeats} round(s); {os.cpu_count()} CPU cores\n")
    print("| process | try | first metrics line (s) | run finished (s) | val accuracy |")
    print("|---|---|---:|---:|---:|")
    for (mode, attempt), runs_of_row in results.items():
        def middle(key, rows=runs_of_row):
            return sorted(row[key] for row in rows)[len(rows) // 2]

        print(f"| {mode} | {attempt} | {middle('first_metrics_s'):.1f} | {middle('finished_s'):.1f} | "
              f"{middle('val_accuracy'):.3f} |")


if __name__ == "__main__":
    main()
