"""How often the 8-bit LiteRT file gives the app's answer: three runs per dataset, each exported and re-scored.

For each dataset: a 5-epoch run with the default settings (the run the tests
train), a fast-preset run and a best-preset run, all at seed 42; each is
exported as `tflite` and `tflite-int8` and checked with `check_exports` on its
validation pictures. Prints one Markdown row per run and format.

Usage: python benchmarks/int8_parity.py ../shared/datasets/flowers5 ../shared/datasets/weather4
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    from _presets import fresh_home, preset_config

    runs_dir = fresh_home("tlcore-int8-") / "runs"
    from tlcore.export import writers
    from tlcore.export.parity import check_exports
    from tlcore.training.config import TrainConfig
    from tlcore.training.run import train

    print("| dataset | run | format | agrees with the app | accuracy (app's) | size (bytes) |")
    print("|---|---|---|---:|---:|---:|")
    for data in args.datasets:
        runs = {"default settings, 5 epochs": TrainConfig(data=data, epochs=5),
                "fast preset": preset_config(data, "fast")[0],
                "best preset": preset_config(data, "best")[0]}
        for label, config in runs.items():
            result = train(config, runs_dir=runs_dir)
            files = {name: writers.export_run(result.run_dir, name) for name in ("tflite", "tflite-int8")}
            for report in check_exports(result.run_dir, files):
                print(f"| {pathlib.Path(data).name} | {label} | {report.format} | {report.agreement:.1%} | "
                      f"{report.accuracy:.1%} ({report.app_accuracy:.1%}) | {report.size_bytes} |", flush=True)


if __name__ == "__main__":
    main()
