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
measured in the same invocation, so a busy machine slows both alike. The
issue's target: the whole run and the audit of the large folder within 1.5x
of the small one's. It is not a test.

`--code FOLDER` times another checkout's tlcore (e.g. main's, before a change):
its folder goes first on PYTHONPATH of every timed process.

Usage: KERAS_HOME=... python benchmarks/large_photos.py ../shared/datasets/flowers5 [--pictures 60] [--code /work/main]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
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


def feature_pass_rate(run_dir: pathlib.Path) -> float | None:
    """Pictures per second of the run's whole feature pass (every split, the views' first), from its metrics rows."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("type") == "feature_pass" and row.get("view", 0) == 0:
            rows.append(row)
    seconds = sum(row.get("seconds", 0.0) for row in rows)
    pictures = sum(row.get("images", 0) for row in rows)
    return pictures / seconds if seconds > 0 else None


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
        row["feature_pass_per_s"] = feature_pass_rate(max(runs.iterdir(), key=lambda path: path.stat().st_mtime))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--pictures", type=int, default=60)
    parser.add_argument("--code", default=str(HERE.parent), help="the checkout whose tlcore is timed (default: this one)")
    args = parser.parse_args()
    keras_home = os.environ.get("KERAS_HOME", str(pathlib.Path.home() / ".keras"))
    photos = chosen_photos(pathlib.Path(args.data), args.pictures)
    with tempfile.TemporaryDirectory(prefix="tlcore-large-photos-") as root:
        small, large = make_folders(photos, pathlib.Path(root))
        rows = {name: measure(folder, pathlib.Path(args.code), keras_home) for name, folder in (("small", small), ("large", large))}
    count = len(photos)
    print(f"{count} pictures; tlcore from {args.code}")
    print("| folder | audit (pictures/s) | decoding alone (pictures/s) | feature pass (pictures/s) | whole fast run (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        rate = row["feature_pass_per_s"]
        print(f"| {name} | {count / row['audit_s']:.1f} | {count / row['decode_s']:.0f} | "
              f"{'-' if rate is None else f'{rate:.1f}'} | {row['run_s']:.1f} |")
    small_row, large_row = rows["small"], rows["large"]
    print(f"- audit time, large / small: {large_row['audit_s'] / small_row['audit_s']:.2f}x (target 1.5x)")
    print(f"- decoding time, large / small: {large_row['decode_s'] / small_row['decode_s']:.2f}x")
    if small_row["feature_pass_per_s"] and large_row["feature_pass_per_s"]:
        print(f"- feature pass time, large / small: {small_row['feature_pass_per_s'] / large_row['feature_pass_per_s']:.2f}x")
    print(f"- whole run time, large / small: {large_row['run_s'] / small_row['run_s']:.2f}x (target 1.5x)")


if __name__ == "__main__":
    main()
