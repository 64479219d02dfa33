"""Does a picture look like any of the classes? The doubt rule, measured, and the arithmetic behind it.

A classifier always names one of its classes: a daisy shown to a model of
shapes comes out as "circle". Its probability alone is a poor alarm (a strange
picture can get a confident answer, and a familiar one a hesitant one). What
does tell is where the picture lands among the pictures the model learned
from, in the space the classifier sees (the backbone's pooled features): a
familiar picture has training pictures close by; a picture of something else
is far from all of them.

The rule: the mean cosine distance from the picture's pooled features to its
`NEIGHBOURS` nearest training pictures (any class) is more than `DISTANCE_MARGIN`
times the `DISTANCE_QUANTILE` quantile of the same distance among the training
pictures themselves (each left out of its own neighbours). It was chosen by
`python benchmarks/doubt.py` (README, "Doubt"): among the rules tried (distance
from the predicted class's centre, 1 or 5 nearest pictures, several quantiles
and margins, and low top probability), it raised the fewest false alarms on the
models' own validation pictures (0-3 %) while catching 80-100 % of pictures
from other datasets; the top probability, at any threshold, caught fewer and
raised more false alarms.

The reference (at most `REFERENCE_PER_CLASS` training pictures per class, their
features and the threshold) is computed once per run and kept in the run
folder (`prediction.doubt_reference`, which has the model). This module is
the arithmetic only: NumPy, no model.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np

from tlcore.runs import folder as run_folder

DOUBT_FILE = "doubt.json"
DOUBT_FEATURES_FILE = "doubt_features.npy"
REFERENCE_PER_CLASS = 64
NEIGHBOURS = 5
DISTANCE_QUANTILE = 0.99
DISTANCE_MARGIN = 1.0
REFERENCE_VERSION = 2


@dataclass(frozen=True)
class Doubt:
    """Whether a picture looks like none of the classes, and by how much.

    Attributes:
        unfamiliar: True when the rule fires.
        distance: mean cosine distance to the nearest training pictures.
        threshold: the distance beyond which the rule fires.
        reason: why, in plain words ("" when it does not fire).
    """

    unfamiliar: bool
    distance: float
    threshold: float
    reason: str = ""

    def to_dict(self) -> dict:
        return {"unfamiliar": self.unfamiliar, "distance": self.distance, "threshold": self.threshold,
                "reason": self.reason}


def normalised(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a row of zeros stays zeros)."""
    features = np.asarray(features, dtype="float64")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def nearest_distances(features: np.ndarray, reference: np.ndarray, neighbours: int = NEIGHBOURS,
                      leave_out_self: bool = False) -> np.ndarray:
    """Mean cosine distance from each row of `features` to its `neighbours` nearest rows of `reference` (unit rows)."""
    distances = 1.0 - normalised(features) @ np.asarray(reference, dtype="float64").T
    if leave_out_self:
        np.fill_diagonal(distances, np.inf)
    count = max(1, min(neighbours, distances.shape[1] - (1 if leave_out_self else 0)))
    return np.sort(distances, axis=1)[:, :count].mean(axis=1)


def build_reference(features: np.ndarray, class_names: list[str], quantile: float = DISTANCE_QUANTILE,
                    neighbours: int = NEIGHBOURS) -> tuple[dict, np.ndarray]:
    """The threshold and the reference pictures' features, from training pictures' pooled features.

    Args:
        features: pooled features of training pictures, (N, channels), N of at least 2.
        class_names: the model's classes, in output order.
        quantile: which quantile of the training pictures' own distances is the threshold.
        neighbours: how many nearest pictures a distance is the mean over.

    Returns:
        (a JSON-friendly dict with the threshold, the reference's unit features as float32).
    """
    unit = normalised(features)
    own = nearest_distances(unit, unit, neighbours, leave_out_self=True)
    facts = {"version": REFERENCE_VERSION, "quantile": quantile, "neighbours": neighbours,
             "threshold": float(np.quantile(own, quantile)), "class_names": list(class_names), "pictures": len(unit)}
    return facts, unit.astype("float32")


def assess(facts: dict, reference: np.ndarray, pooled: np.ndarray, margin: float = DISTANCE_MARGIN) -> list[Doubt]:
    """The doubt rule for each picture, from its pooled features.

    Args:
        facts: `build_reference`'s dict (with its threshold).
        reference: `build_reference`'s features.
        pooled: the pictures' pooled features, (N, channels).
        margin: how many times the threshold is "far".

    Returns:
        One `Doubt` per picture.
    """
    threshold = margin * float(facts["threshold"])
    distances = nearest_distances(pooled, reference, int(facts.get("neighbours", NEIGHBOURS)))
    reason = "it is farther from the pictures the model learned from than almost any of them is from the others"
    return [Doubt(bool(value > threshold), float(value), threshold, reason if value > threshold else "")
            for value in distances]


def reference_files(run_dir: pathlib.Path, labels: list[str]) -> tuple[list[str], list[int]]:
    """Up to `REFERENCE_PER_CLASS` training pictures per class from the run's split.json (evenly spread)."""
    split = run_folder.run_split(run_dir)
    index = {name: i for i, name in enumerate(labels)}
    by_class: dict[str, list[str]] = {}
    for entry in split.get("train", []):
        if entry[1] in index and pathlib.Path(entry[2]).is_file():
            by_class.setdefault(entry[1], []).append(entry[2])
    files, classes = [], []
    for name, members in sorted(by_class.items()):
        step = max(1, len(members) / REFERENCE_PER_CLASS)
        chosen = [members[int(i * step)] for i in range(min(len(members), REFERENCE_PER_CLASS))]
        files += chosen
        classes += [index[name]] * len(chosen)
    return files, classes
