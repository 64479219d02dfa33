"""Grad-CAM on every backbone of the table: the feature map found, its size, finite maps (random weights, small inputs).

Usage: python benchmarks/explain_backbones.py
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tlcore.model.backbones import get_backbone, list_backbones  # noqa: E402
from tlcore.model.build import build_classifier  # noqa: E402
from tlcore.results.explain import grad_cam  # noqa: E402


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print("| backbone | input | feature layer | map | finite | seconds |")
    print("|---|---:|---|---|---|---:|")
    for row in list_backbones():
        started = time.monotonic()
        size = max(64, get_backbone(row["name"]).min_input_size)
        parts = build_classifier(row["name"], 2, size, weights=None, seed=0)
        images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
        maps, _, _, layer = grad_cam(parts.model, images, compiled=False)
        print(f"| {row['name']} | {size} | {layer} | {maps.shape[1]}x{maps.shape[2]} | {bool(np.isfinite(maps).all())} "
              f"| {time.monotonic() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
