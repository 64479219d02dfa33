"""How tlcore grows with the number of pictures: audits, a split change, training, peak memory.

Derived datasets of N pictures are made once from the shared photos (random
crops, flips and colour jitter, 160 px JPEGs) into a cache folder, then for
each size the benchmark runs, each in a fresh process:

- the first audit (empty `$TLCORE_HOME`: every picture decoded and hashed, on every core),
- a second audit of the unchanged folder (the per-file facts are kept),
- a split change (validation share 0.2 -> 0.25: no picture is read again),
- 3 frozen epochs (`--freeze all`) and 3 epochs of `--freeze top:2`, with peak memory,

and fits the growth exponent k of time ~ N^k between the sizes (1 is linear).
It prints a table; it is not a test.

Usage: KERAS_HOME=... python benchmarks/scale.py ../shared/datasets/flowers5 ../shared/datasets/weather4 \
           --sizes 1000 10000 100000 [--cache ~/.cache/tlcore-scale]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageEnhance, ImageOps

HERE = pathlib.Path(__file__).resolve().parent
SIDE = 160


def source_pictures(datasets: list[str]) -> dict[str, list[pathlib.Path]]:
    """Class name -> the photos of that class, over all the given datasets (class names kept apart)."""
    classes = {}
    for data in datasets:
        for folder in sorted(pathlib.Path(data).iterdir()):
            if folder.is_dir():
                classes[f"{pathlib.Path(data).name}-{folder.name}"] = sorted(p for p in folder.iterdir() if p.is_file())
    return classes


def derive(source: pathlib.Path, rng: random.Random) -> Image.Image:
    with Image.open(source) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = picture.size
    scale = rng.uniform(0.6, 1.0)
    crop_w, crop_h = max(8, int(width * scale)), max(8, int(height * scale))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    picture = picture.crop((left, top, left + crop_w, top + crop_h)).resize((SIDE, SIDE))
    if rng.random() < 0.5:
        picture = ImageOps.mirror(picture)
    picture = ImageEnhance.Color(picture).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Brightness(picture).enhance(rng.uniform(0.8, 1.2))


def make_dataset(classes: dict[str, list[pathlib.Path]], size: int, cache: pathlib.Path) -> pathlib.Path:
    """A folder of `size` derived pictures, made once (a marker file says it is complete)."""
    folder = cache / f"derived-{size}"
    if (folder / ".complete").exists():
        return folder
    rng = random.Random(size)
    names = sorted(classes)
    for index in range(size):
        label = names[index % len(names)]
        target = folder / label / f"{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        derive(rng.choice(classes[label]), rng).save(target, quality=85)
    (folder / ".complete").write_text("")
    return folder


_PEAK_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def timed(command: list[str], env: dict) -> tuple[float, float, dict | None]:
    """Wall seconds, peak memory (MiB) of the command's process, and its last JSON line.

    The command runs under a small wrapper process of its own, whose children's
    peak resident memory is then exactly the command's.
    """
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *command], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    peak_kb = next((int(line.split()[1]) for line in reversed(done.stderr.splitlines()) if line.startswith("PEAK_KB")), 0)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return wall, peak_kb / 1024, (json.loads(lines[-1]) if lines else None)


def measure(data: pathlib.Path, env: dict) -> dict:
    tlcore = [sys.executable, "-m", "tlcore"]
    row = {}
    row["first_audit_s"], _, _ = timed(tlcore + ["audit", str(data), "--json"], env)
    row["second_audit_s"], _, _ = timed(tlcore + ["audit", str(data), "--json"], env)
    row["split_change_s"], _, _ = timed(tlcore + ["audit", str(data), "--val-split", "0.25", "--json"], env)
    for name, freeze in (("frozen", "all"), ("top2", "top:2")):
        # The fast preset: one phase with exactly these blocks learning, as the table says.
        wall, peak, result = timed(tlcore + ["train", str(data), "--preset", "fast", "--freeze", freeze, "--epochs", "3",
                                             "--patience", "0", "--json"], env)
        row[f"{name}_s"], row[f"{name}_peak_mib"] = wall, peak
        row[f"{name}_cache"] = (result or {}).get("feature_cache")
    return row


def growth_exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """The slope of log(time) against log(size) by least squares; None with fewer than two sizes."""
    if len(sizes) < 2:
        return None
    xs, ys = [math.log(s) for s in sizes], [math.log(max(t, 1e-9)) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--cache", default=str(pathlib.Path.home() / ".cache" / "tlcore-scale"))
    args = parser.parse_args()
    classes = source_pictures(args.datasets)
    rows = []
    print("| pictures | first audit (s) | second audit (s) | split change (s) | 3 frozen epochs (s) | peak MiB | "
          "top:2, 3 epochs (s) | peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        data = make_dataset(classes, size, pathlib.Path(args.cache).expanduser())
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "TLCORE_HOME": home, "PYTHONPATH": str(HERE.parent), "TLCORE_SPARE": "0"}
            row = measure(data, env)
        rows.append((size, row))
        print(f"| {size:,} | {row['first_audit_s']:.1f} | {row['second_audit_s']:.2f} | {row['split_change_s']:.2f} | "
              f"{row['frozen_s']:.1f} | {row['frozen_peak_mib']:.0f} | {row['top2_s']:.1f} | {row['top2_peak_mib']:.0f} |",
              flush=True)
    sizes = [size for size, _ in rows]
    for key in ("first_audit_s", "second_audit_s", "frozen_s", "top2_s"):
        exponent = growth_exponent(sizes, [row[key] for _, row in rows])
        if exponent is not None:
            print(f"- growth exponent of {key}: {exponent:.2f} (1 is linear)")
    for size, row in rows:
        print(f"- {size:,}: feature cache frozen: {row['frozen_cache']}; top:2: {row['top2_cache']}")


if __name__ == "__main__":
    main()
