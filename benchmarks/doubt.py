"""How often the doubt rule fires: on a model's own validation pictures (false alarms) and on other datasets' pictures.

Trains one run per dataset with tlcore's defaults (or reuses runs given with
--runs), then, for each model, applies candidate rules to its validation
pictures and to every picture of the other datasets (a weather model shown
flowers, a flower model shown shapes, the shapes model shown photos). The rule
tlcore uses (`tlcore.results.doubt`) is the last row of each table.

Usage:
    python benchmarks/doubt.py ../shared/datasets/flowers5 ../shared/datasets/weather4 --demo
    python benchmarks/doubt.py DATA... --runs RUN_DIR...   # the same runs, in the same order as DATA
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tlcore  # noqa: E402
from tlcore.results import doubt  # noqa: E402
from tlcore.results.prediction import (  # noqa: E402
    _features_and_probabilities_model,
    doubt_reference,
    load_run_model,
    prepare_images,
)
from tlcore.runs import folder as run_folder  # noqa: E402

PER_SET = 200  # pictures of another dataset shown to a model (evenly spread over its classes)


def pictures_of(dataset: str) -> list[str]:
    audit = tlcore.audit_dataset(dataset, find_duplicates=False)
    files = [record.path for record in audit.records]
    step = max(1, len(files) / PER_SET)
    return [files[int(i * step)] for i in range(min(len(files), PER_SET))]


def outputs(model, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pooled, probabilities = _features_and_probabilities_model(model).predict(prepare_images(files, model.input_shape[1]),
                                                                            batch_size=32, verbose=0)
    return np.asarray(pooled), np.asarray(probabilities)


def candidate_rules(reference_features, reference_labels, class_names):
    """(name, fires(pooled, probabilities) -> bool array) for each rule compared."""
    rules = []
    for quantile in (0.95, 0.99):
        for margin in (1.0, 1.25):
            rules.append((f"distance from the predicted class's centre > {margin:g} x q{quantile:g}",
                          _centre_rule(reference_features, reference_labels, len(class_names), quantile, margin)))
    for k in (1, 5):
        for quantile in (0.95, 0.99):
            for margin in (1.0, 1.25):
                facts, unit = doubt.build_reference(reference_features, class_names, quantile=quantile, neighbours=k)
                rules.append((f"{k}-nearest distance > {margin:g} x q{quantile:g}",
                              lambda pooled, probabilities, facts=facts, unit=unit, margin=margin: np.array(
                                  [item.unfamiliar for item in doubt.assess(facts, unit, pooled, margin=margin)])))
    for low in (0.5, 0.6, 0.7):
        rules.append((f"top probability < {low:g}", lambda pooled, probabilities, low=low: probabilities.max(1) < low))
    return rules


def _centre_rule(features, labels, classes, quantile, margin):
    """Cosine distance from the centre of the predicted class, against the class's own pictures' distances."""
    unit = doubt.normalised(features)
    centres = doubt.normalised(np.stack([unit[labels == c].mean(axis=0) for c in range(classes)]))
    limits = np.array([np.quantile(1.0 - unit[labels == c] @ centres[c], quantile) for c in range(classes)]) * margin

    def fires(pooled, probabilities):
        predicted = probabilities.argmax(axis=1)
        return 1.0 - np.sum(doubt.normalised(pooled) * centres[predicted], axis=1) > limits[predicted]

    return fires


def measure(run_dir: pathlib.Path, sets: dict[str, list[str]]) -> list[tuple[str, dict[str, float]]]:
    model, labels = load_run_model(run_dir)
    files, classes = doubt.reference_files(run_dir, labels)
    reference_features, _ = outputs(model, files)
    classes = np.array(classes)
    split = run_folder.read_json(run_dir / run_folder.SPLIT_FILE, {})
    seen = {"its own validation pictures": [entry[2] for entry in split["val"]], **sets}
    looked = {name: outputs(model, members) for name, members in seen.items()}
    rules = candidate_rules(reference_features, classes, labels)
    chosen = doubt_reference(run_dir, model, labels)
    rules.append(("tlcore's rule", lambda pooled, probabilities: np.array(
        [item.unfamiliar for item in doubt.assess(*chosen, pooled)])))
    return [(name, {set_name: float(rule(*looked[set_name]).mean()) for set_name in seen}) for name, rule in rules]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--demo", action="store_true", help="also the demo shapes (made in $TLCORE_HOME/demo)")
    parser.add_argument("--runs", nargs="+", help="runs already trained on the datasets, in the same order")
    args = parser.parse_args()
    datasets = [str(pathlib.Path(name).resolve()) for name in args.datasets]
    if args.demo:
        datasets.append(str(tlcore.ensure_demo_dataset()))
    runs = [pathlib.Path(run) for run in args.runs] if args.runs else []
    for dataset in datasets[len(runs):]:
        result = tlcore.train(tlcore.TrainConfig(data=dataset))
        print(f"trained {pathlib.Path(dataset).name}: {result.val_accuracy:.1%} in {result.wall_s:.0f} s -> {result.run_dir}",
              flush=True)
        runs.append(pathlib.Path(result.run_dir))
    pictures = {pathlib.Path(dataset).name: pictures_of(dataset) for dataset in datasets}
    for dataset, run_dir in zip(datasets, runs, strict=True):
        own = pathlib.Path(dataset).name
        others = {f"{name} pictures": files for name, files in pictures.items() if name != own}
        rows = measure(run_dir, others)
        names = list(rows[0][1])
        print(f"\nmodel of {own} ({run_dir.name}); share of pictures the rule calls unfamiliar")
        print("| rule | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for rule, rates in rows:
            print(f"| {rule} | " + " | ".join(f"{rates[name]:.0%}" for name in names) + " |")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
