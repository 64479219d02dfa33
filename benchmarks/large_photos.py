"""Phone-sized photos against the same photos at web size: audit, feature pass, whole run, pictures per second.

Makes two folders of the same N photos of a dataset (an equal share of each
class): the originals as they are (small web pictures, 159-500 px here), and
the same pictures enlarged to 4,000x3,000 and saved as JPEG at quality 90, as
a 12-megapixel phone photo arrives. For each folder, in a fresh `TLCORE_HOME`
and a process of its own:

- the first audit (`tlcore audit DATA --json`: every picture decoded and hashed),
- decoding alone: every picture read and resized to 224 px as training reads it
  (`tlcore.training.pipeline.load_images`, timed after the TensorFlow import),
- the whole run `tlcore train DATA --preset fast --json` (start to exit),
- its feature pass: the run's `feature_pass` rows, pictures per second over
  all the pass's pictures (decoding included; that is what phone photos slow).

It prints pictures per second of both folders and large/small time ratios,
measured in the same invocation, so a busy machine slows both alike; with
`--repeats R` every round measures everything once and the ratios are the
median of the rounds' ratios. The issue's target: the whole run and the
audit of the large folder within 1.5x of the small one's. It is not a test.

`--code FOLDER...` times other checkouts' tlcore (e.g. main's, before a change,
and this one), each in every round: a checkout's folder is the working
folder of every process timed for it, so `python -m tlcore` imports its code.

Usage: KERAS_HOME=... python benchmarks/large_photos.py ../shared/datasets/flowers5 [--pictures 60] \
           [--code /work/main .] [--repeats 3]
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
import time

from PIL import Image, ImageOps

HERE = pathlib.Path(__file__).resolve().parent
LARGE_SIZE = (4000, 3000)
LARGE_QUALITY = 90


def chosen_photos(data: pathlib.Path, count: int) -> list[pathlib.Path]:
    """`count` photos, taken in turn from each class folder (sorted), so every class has its share."""
    classes = [sorted(path for path in folder.iterdir() if path.is_file()) for folder in sorted(data.iterdir()) if folder.is_dir()]
    chosen, index = [], 0
    while len(chosen) < count and any(index < len(files) for files in classes):
        chosen += [files[index] for files in classes if index < len(files)][: count - len(chosen)]
        index += 1
    return chosen


def make_folders(photos: list[pathlib.Path], root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(small, large): the photos copied as they are, and enlarged to 4,000x3,000 JPEGs at quality 90."""
    small, large = root / "small", root / "large"
    for photo in photos:
        for folder in (small, large):
            (folder / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (small / photo.parent.name / photo.name).write_bytes(photo.read_bytes())
        with Image.open(photo) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
        picture.resize(LARGE_SIZE, Image.Resampling.BICUBIC).save(
            large / photo.parent.name / (photo.stem + ".jpg"), quality=LARGE_QUALITY)
    return small, large


def timed(command: list[str], env: dict, code: pathlib.Path) -> tuple[float, str]:
    """Wall seconds of a command run in the checkout `code` (`python -m` imports from there first), start to exit, and its output."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=code)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return wall, done.stdout


def feature_pass_seconds(run_dir: pathlib.Path) -> float:
    """Seconds of the run's whole feature pass (every split, the views' first), from its metrics rows."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("type") == "feature_pass" and row.get("view", 0) == 0:
            rows.append(row)
    return sum(row.get("seconds", 0.0) for row in rows)


_DECODE_TIMER = """
import pathlib, sys, time
from tlcore.training import pipeline
files = sorted(str(path) for path in pathlib.Path(sys.argv[1]).rglob("*.jpg"))
pipeline.load_images(files[:2], 224)  # the graph traced once
started = time.perf_counter()
pipeline.load_images(files, 224)
print(time.perf_counter() - started)
"""


def measure(data: pathlib.Path, code: pathlib.Path, keras_home: str) -> dict:
    """Audit and whole-run seconds and the feature pass rate of one folder, each in a fresh TLCORE_HOME."""
    tlcore = [sys.executable, "-m", "tlcore"]
    row = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TLCORE_HOME": home, "PYTHONPATH": str(code), "TLCORE_SPARE": "0", "KERAS_HOME": keras_home}
        row["audit_s"], _ = timed(tlcore + ["audit", str(data), "--json"], env, code)
        _, printed = timed([sys.executable, "-c", _DECODE_TIMER, str(data)], env, code)
        row["decode_s"] = float(printed.split()[-1])
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TLCORE_HOME": home, "PYTHONPATH": str(code), "TLCORE_SPARE": "0", "KERAS_HOME": keras_home}
        runs = pathlib.Path(home) / "bench-runs"
        row["run_s"], _ = timed(tlcore + ["train", str(data), "--preset", "fast", "--runs-dir", str(runs), "--json"], env, code)
        row["feature_pass_s"] = feature_pass_seconds(max(runs.iterdir(), key=lambda path: path.stat().st_mtime))
    return row


RATIOS = (("audit_s", "audit"), ("decode_s", "decoding alone"), ("feature_pass_s", "feature pass"), ("run_s", "whole fast run"))


def one_round(folders: dict, codes: list[str], keras_home: str) -> dict:
    """{code: {folder name: row}}: every checkout on both folders, one after the other, so all see the same load."""
    return {code: {name: measure(folder, pathlib.Path(code), keras_home) for name, folder in folders.items()} for code in codes}


def report(code: str, rounds: list[dict], count: int) -> None:
    """Median pictures per second of each folder, and the median over rounds of the large/small time ratios."""
    print(f"\ntlcore from {code}, {count} pictures, {len(rounds)} round(s)")
    print("| folder | audit (pictures/s) | decoding alone (pictures/s) | feature pass (pictures/s) | whole fast run (s) |")
    print("|---|---:|---:|---:|---:|")
    for name in ("small", "large"):
        rows = [measured[code][name] for measured in rounds]
        median = {key: statistics.median(row[key] for row in rows) for key, _ in RATIOS}
        print(f"| {name} | {count / median['audit_s']:.1f} | {count / median['decode_s']:.0f} | "
              f"{count / median['feature_pass_s']:.1f} | {median['run_s']:.1f} |")
    for key, shown in RATIOS:
        ratios = [measured[code]["large"][key] / measured[code]["small"][key] for measured in rounds]
        target = " (target 1.5x)" if key in ("audit_s", "run_s") else ""
        print(f"- {shown} time, large / small: {statistics.median(ratios):.2f}x "
              f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)}){target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--pictures", type=int, default=60)
    parser.add_argument("--code", nargs="+", default=[str(HERE.parent)],
                        help="the checkouts whose tlcore is timed, each in every round (default: this one)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; ratios are the median of each round's")
    args = parser.parse_args()
    keras_home = os.environ.get("KERAS_HOME", str(pathlib.Path.home() / ".keras"))
    photos = chosen_photos(pathlib.Path(args.data), args.pictures)
    with tempfile.TemporaryDirectory(prefix="tlcore-large-photos-") as root:
        small, large = make_folders(photos, pathlib.Path(root))
        rounds = [one_round({"small": small, "large": large}, args.code, keras_home) for _ in range(args.repeats)]
    for code in args.code:
        report(code, rounds, len(photos))


if __name__ == "__main__":
    main()
