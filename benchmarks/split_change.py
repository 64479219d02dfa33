"""How long moving the validation slider takes at N pictures: `with_new_split` on a synthetic audit (no files).

The audit's records are made up (10 classes, no duplicates found), so only the
split and the findings are timed, as the Data page redoes them; the first
audit of real pictures is `benchmarks/scale.py`'s. Prints seconds per change.

Usage: python benchmarks/split_change.py [--pictures 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tlcore.data.audit import with_new_split  # noqa: E402
from tlcore.data.records import DatasetAudit, ImageRecord  # noqa: E402


def synthetic_audit(pictures: int) -> DatasetAudit:
    classes = [f"class{index}" for index in range(10)]
    records = [ImageRecord(f"/data/{classes[i % 10]}/{i}.jpg", f"{classes[i % 10]}/{i}.jpg", classes[i % 10], "train",
                           "JPEG", 224, 224, False) for i in range(pictures)]
    audit = DatasetAudit("/data", "/data", "class_folders", classes, records, duplicates=[], duplicates_checked=True)
    return with_new_split(audit, 0.2, 42)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    audit = synthetic_audit(args.pictures)
    times = []
    for index in range(args.repeats):
        started = time.perf_counter()
        with_new_split(audit, 0.25 + 0.01 * index, 42)
        times.append(time.perf_counter() - started)
    print(f"split change at {args.pictures:,} pictures: median {statistics.median(times):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
