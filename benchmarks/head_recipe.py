"""Which head recipe wins, measured on cached features: variant x dataset x seed.

Features are computed once per (dataset, backbone, picture, mirrored or not)
with the real ImageNet backbones and tlcore's own feature pass (its decoding,
its preprocessing, its folded prefix), and kept as .npy files in a cache
folder. Kept are the activations at the boundary of the "best" preset's second
phase (before the top two blocks) and the pooled features after the whole
backbone. Every head variant then trains on them in seconds, so many variants
and seeds cost little.

Datasets: flowers5, weather4, the built-in demo, and "photos12mp": the pictures
of flowers5 and weather4 together (9 classes) enlarged to 3,000-4,000 px on the
longer side and saved as JPEG quality 90, made once into the cache folder, so
that decoding costs what a phone photo costs.

Each seed draws a different train/validation split (tlcore's own audit). The
validation pictures choose the best epoch and nothing else, as in tlcore; every
other choice (a regularisation strength, whether the second phase pays) is
made on the training pictures alone.

Usage:
    python benchmarks/head_recipe.py [--cache DIR] [--seeds 42 1 7] [--datasets ...] [--backbones ...]
        [--variants NAME ...] [--extract-only] [--second-phase]
Without --second-phase: every head variant (`VARIANTS`) on the pooled features; finished rows are
kept in DIR/variant_results.jsonl, so a run cut short goes on where it stopped. With --second-phase:
the new layer alone (40 epochs) against the "best" preset's two phases (15 + 25), and the choice of
`tlcore.training.second_phase`'s check, which sees only the training pictures.
Needs ../shared/keras-weights (or $TLCORE_KERAS_WEIGHTS) for the two backbones. On a 2-core
machine shared with others, the features took about 25 minutes for all four datasets and both
backbones (the 700 enlarged photos: about 4 minutes to decode), the head variants seconds each,
one second-phase comparison 2-10 minutes.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SHARED = HERE.parents[1] / "shared"
WEIGHTS = pathlib.Path(os.environ.get("TLCORE_KERAS_WEIGHTS", SHARED / "keras-weights"))
DATASETS = {"flowers5": SHARED / "datasets" / "flowers5", "weather4": SHARED / "datasets" / "weather4"}
BACKBONES = ("mobilenetv2_100", "mobilenetv2_035")
LARGE_NAME = "photos12mp"
LARGE_SIDES = (3000, 4000)
TOP_BLOCKS = 2  # the "best" preset's second phase: block_16 and the last convolution


# ----------------------------------------------------------------- the datasets


def make_large_photo_set(destination: pathlib.Path, sources: dict) -> pathlib.Path:
    """flowers5 + weather4 enlarged to 3,000-4,000 px (longer side), JPEG quality 90; made once."""
    import random

    from PIL import Image

    marker = destination / ".complete"
    if marker.exists():
        return destination
    shutil.rmtree(destination, ignore_errors=True)
    randomness = random.Random(0)
    for dataset, folder in sources.items():
        for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
            target = destination / f"{dataset}_{class_folder.name}"
            target.mkdir(parents=True, exist_ok=True)
            for picture in sorted(class_folder.iterdir()):
                with Image.open(picture) as image:
                    image = image.convert("RGB")
                    scale = randomness.uniform(*LARGE_SIDES) / max(image.size)
                    size = (round(image.width * scale), round(image.height * scale))
                    image.resize(size, Image.BICUBIC).save(target / (picture.stem + ".jpg"), quality=90)
    marker.touch()
    return destination


def dataset_folders(cache: pathlib.Path) -> dict:
    from tlcore.data.demo import ensure_demo_dataset

    folders = dict(DATASETS)
    folders["demo"] = ensure_demo_dataset()
    started = time.monotonic()
    folders[LARGE_NAME] = make_large_photo_set(cache / LARGE_NAME, DATASETS)
    print(f"# {LARGE_NAME} ready in {time.monotonic() - started:.0f} s", flush=True)
    return folders


def all_pictures(folder: pathlib.Path) -> list[str]:
    """Every picture of the dataset in a fixed order (the audit of any seed holds the same ones)."""
    from tlcore.data.audit import audit_dataset

    audit = audit_dataset(folder, 0.2, 0, find_duplicates=False)
    return sorted(record.path for split in ("train", "val", "test") for record in audit.split_records(split))


# ----------------------------------------------------------------- the features


def use_shared_weights(cache: pathlib.Path) -> None:
    """KERAS_HOME in the cache folder, its models/ holding the shared weights (Keras finds them offline)."""
    models = cache / "keras" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for weights in WEIGHTS.glob("*.h5"):
        if not (models / weights.name).exists():
            shutil.copy(weights, models / weights.name)
    os.environ["KERAS_HOME"] = str(cache / "keras")


def extract(cache: pathlib.Path, name: str, folder: pathlib.Path, backbone: str) -> None:
    """boundary.npy (2, N, h, w, c) and pooled.npy (2, N, C) (plain, mirrored) and paths.txt, once."""
    target = cache / "features" / name / backbone
    if (target / "pooled.npy").exists():
        return
    import keras
    import numpy as np

    from tlcore.model import blocks as blocks_module
    from tlcore.model.build import build_classifier
    from tlcore.training import features as features_module
    from tlcore.training import pipeline

    started = time.monotonic()
    paths = all_pictures(folder)
    parts = build_classifier(backbone, num_classes=2, weights="imagenet", seed=0)
    blocks = blocks_module.backbone_blocks(backbone, parts.backbone)
    trainable = blocks_module.parse_freeze(f"top:{TOP_BLOCKS}", [block.name for block in blocks])
    blocks_module.apply_freezing(parts.backbone, blocks, trainable)
    plan = features_module.plan_feature_cache(parts)
    size = parts.model.input_shape[1]
    boundary = np.empty((2, len(paths), *plan.feature_shape), dtype="float32")
    progress = pathlib.Path(tempfile.mkdtemp(prefix="tlcore-head-recipe-run-"))
    mirror = lambda batch, training=True: keras.ops.flip(keras.ops.convert_to_tensor(batch), axis=2)  # noqa: E731
    images = pipeline.load_images(paths, size)  # decoded once, for both views
    decoded = time.monotonic()
    for view, change in enumerate((None, mirror)):
        batches = (images[i:i + 16] for i in range(0, len(images), 16))
        features_module.compute_features(plan, batches, len(paths), boundary[view], progress, name, change)
    top_blocks = plan.top.get_layer("backbone_top")
    pooled = np.stack([
        np.concatenate([keras.ops.convert_to_numpy(keras.ops.mean(top_blocks(view[i:i + 64], training=False), axis=(1, 2)))
                        for i in range(0, len(paths), 64)])
        for view in boundary
    ])
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "boundary.npy", boundary)
    (target / "paths.txt").write_text("\n".join(paths))
    np.save(target / "pooled.npy", pooled)  # last: its presence means the entry is complete
    shutil.rmtree(progress, ignore_errors=True)
    print(f"# features {name} {backbone}: {len(paths)} pictures, decoded in {decoded - started:.0f} s, "
          f"features in {time.monotonic() - decoded:.0f} s", flush=True)


# ----------------------------------------------------------------- the splits


def load_features(cache: pathlib.Path, name: str, backbone: str, kind: str):
    import numpy as np

    target = cache / "features" / name / backbone
    paths = (target / "paths.txt").read_text().split("\n")
    return np.load(target / f"{kind}.npy", mmap_mode="r"), {path: row for row, path in enumerate(paths)}


def split_rows(folder: pathlib.Path, seed: int, rows: dict):
    """(train rows, train labels, val rows, val labels, class count) of tlcore's split for this seed."""
    import numpy as np

    from tlcore.data.audit import audit_dataset

    audit = audit_dataset(folder, 0.2, seed, find_duplicates=False)
    index = {name: i for i, name in enumerate(audit.class_names)}
    result = []
    for split in ("train", "val"):
        records = audit.split_records(split)
        result += [np.array([rows[r.path] for r in records]), np.array([index[r.label] for r in records])]
    return (*result, len(audit.class_names))


# ----------------------------------------------------------------- the head variants


@dataclass(frozen=True)
class Variant:
    """One way to train the new layer on pooled features; the defaults are tlcore's quick check."""

    name: str
    normalise: bool = False  # L2-normalised features (times the square root of their length)
    flip_views: bool = False  # each epoch sees the plain or the mirrored picture, at random
    flip_average: bool = False  # validation averages the plain and the mirrored picture's probabilities
    hidden: int = 0  # units of one hidden layer before the softmax (0: none)
    dropout: float = 0.2
    label_smoothing: float = 0.1
    weight_decay: float | None = 0.0  # L2 on the softmax layer's kernel; None: chosen by cross-validation
    epochs: int = 30


VARIANTS = (
    Variant("today (quick check)"),
    Variant("L2-normalised", normalise=True),
    Variant("flip average", flip_average=True),
    Variant("flip views + average", flip_views=True, flip_average=True),
    Variant("hidden 256", hidden=256),
    Variant("dropout 0.5", dropout=0.5),
    Variant("flip views", flip_views=True),
    Variant("no label smoothing", label_smoothing=0.0),
    Variant("L2 by CV", weight_decay=None),
)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2)  # the cross-validation's candidates
FOLDS = 3
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


_MODELS: dict = {}  # compiled heads by shape and variant: each is traced once, then only re-initialised


def head_model(features: int, classes: int, variant: Variant, weight_decay: float, seed: int):
    """A compiled head with fresh weights drawn from `seed` and a fresh optimizer."""
    import keras
    import numpy as np

    key = (features, classes, variant, weight_decay)
    if key not in _MODELS:
        inputs = keras.Input((features,))
        x = inputs
        if variant.normalise:
            x = keras.layers.UnitNormalization()(x)
            x = keras.layers.Rescaling(features ** 0.5)(x)
        if variant.hidden:
            x = keras.layers.Dropout(variant.dropout, seed=seed)(x)
            x = keras.layers.Dense(variant.hidden, activation="relu")(x)
        x = keras.layers.Dropout(variant.dropout, seed=seed)(x)
        regulariser = keras.regularizers.L2(weight_decay) if weight_decay else None
        outputs = keras.layers.Dense(classes, activation="softmax", kernel_regularizer=regulariser)(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=variant.label_smoothing))
        _MODELS[key] = model
    model = _MODELS[key]
    for number, layer in enumerate(layer for layer in model.layers if isinstance(layer, keras.layers.Dense)):
        layer.kernel.assign(keras.initializers.GlorotUniform(seed + number)(tuple(layer.kernel.shape)))
        layer.bias.assign(np.zeros(tuple(layer.bias.shape), dtype="float32"))
    for variable in model.optimizer.variables:  # the step count and the moments, not the rate
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(tuple(variable.shape), dtype=variable.dtype))
    return model


def epoch_scores(probabilities, labels):
    """(accuracy, log loss) of one epoch's probabilities."""
    import numpy as np

    accuracy = float(np.mean(probabilities.argmax(1) == labels))
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1))))
    return accuracy, loss


def train_head(pooled, train_rows, train_labels, check_rows, check_labels, classes, variant, weight_decay, seed):
    """Train a head as tlcore does (its feature batches, one `fit`); the accuracy of its best epoch on the check rows
    (best by accuracy, then loss), and of its last epoch."""
    import keras
    import numpy as np

    from tlcore.training.features import feature_batches

    keras.utils.set_random_seed(seed)
    model = head_model(pooled.shape[-1], classes, variant, weight_decay, seed)
    train = np.asarray(pooled[:, train_rows]) if variant.flip_views else np.asarray(pooled[0, train_rows])
    batches = feature_batches(train, train_labels, classes, BATCH_SIZE, shuffle=True, seed=seed, has_views=variant.flip_views)
    checks = [np.asarray(pooled[0, check_rows])] + ([np.asarray(pooled[1, check_rows])] if variant.flip_average else [])
    scores = []

    def score(epoch, logs=None):
        probabilities = sum(np.asarray(model(check, training=False)) for check in checks) / len(checks)
        scores.append(epoch_scores(probabilities, check_labels))

    model.fit(batches, epochs=variant.epochs, verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=score)])
    best = max(scores, key=lambda accuracy_loss: (accuracy_loss[0], -accuracy_loss[1]))
    return best[0], scores[-1][0]


def cross_validated_weight_decay(pooled, train_rows, train_labels, classes, variant, seed) -> float:
    """The weight decay whose heads score best on held-out folds of the training pictures (last epoch: no peeking)."""
    import numpy as np

    folds = np.random.default_rng(seed).permutation(len(train_rows)) % FOLDS
    scores = {}
    for decay in WEIGHT_DECAYS:
        accuracies = []
        for fold in range(FOLDS):
            inner, held = folds != fold, folds == fold
            _, last = train_head(pooled, train_rows[inner], train_labels[inner], train_rows[held], train_labels[held],
                                 classes, variant, decay, seed)
            accuracies.append(last)
        scores[decay] = float(np.mean(accuracies))
    return max(WEIGHT_DECAYS, key=lambda decay: (scores[decay], -decay))  # ties: the smaller decay


def run_variants(cache: pathlib.Path, folders: dict, seeds: list[int], variants, backbones) -> list[dict]:
    """Every variant on every dataset, backbone and seed; rows already in the cache's results file are not run again."""
    import json

    done_file = cache / "variant_results.jsonl"
    done = {}
    if done_file.exists():
        for line in done_file.read_text().splitlines():
            row = json.loads(line)
            done[(row["dataset"], row["backbone"], row["seed"], row["variant"])] = row
    rows = []
    for seed in seeds:  # every dataset with one seed first: a run cut short still covers them all
        for name, folder in folders.items():
            for backbone in backbones:
                pooled, index = load_features(cache, name, backbone, "pooled")
                train_rows, train_labels, val_rows, val_labels, classes = split_rows(folder, seed, index)
                for variant in variants:
                    row = done.get((name, backbone, seed, variant.name))
                    if row is None:
                        started = time.monotonic()
                        decay = variant.weight_decay
                        if decay is None:
                            decay = cross_validated_weight_decay(pooled, train_rows, train_labels, classes, variant, seed)
                        accuracy, _ = train_head(pooled, train_rows, train_labels, val_rows, val_labels, classes,
                                                 variant, decay, seed)
                        row = {"dataset": name, "backbone": backbone, "seed": seed, "variant": variant.name,
                               "accuracy": accuracy, "weight_decay": decay, "seconds": time.monotonic() - started}
                        with open(done_file, "a") as handle:
                            handle.write(json.dumps(row) + "\n")
                    rows.append(row)
                    print(f"| {name} | {backbone} | {seed} | {variant.name} | {row['accuracy']:.3f} | "
                          f"{row['weight_decay']:g} |", flush=True)
    return rows


def print_means(rows: list[dict], key: str = "variant") -> None:
    """Mean accuracy per variant, dataset and backbone, and its difference to the first variant."""
    import statistics

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    backbones = list(dict.fromkeys(row["backbone"] for row in rows))
    names = list(dict.fromkeys(row[key] for row in rows))
    print()
    print(f"| backbone | {key} | " + " | ".join(datasets) + " | mean |")
    print("|---|---|" + "---:|" * (len(datasets) + 1))
    for backbone in backbones:
        means = {}
        for name in names:
            means[name] = [statistics.mean(row["accuracy"] for row in rows
                                           if row["dataset"] == dataset and row["backbone"] == backbone and row[key] == name)
                           for dataset in datasets]
        for name in names:
            cells = [f"{100 * m:.1f}" + ("" if name == names[0] else f" ({100 * (m - b):+.1f})")
                     for m, b in zip(means[name], means[names[0]], strict=True)]
            print(f"| {backbone} | {name} | " + " | ".join(cells) + f" | {100 * statistics.mean(means[name]):.1f} |")


# ----------------------------------------------------------------- the second phase

HEAD_EPOCHS = 15  # the "best" preset's first phase: the new layer alone
TOP_EPOCHS = 25  # then the top blocks too, at TOP_RATE_FACTOR times the rate
TOP_RATE_FACTOR = 0.3


def two_arms(backbone, pooled, boundary, train_rows, train_labels, check_rows, check_labels, classes, seed):
    """The second-phase check's decision (training pictures only), and the best-epoch accuracy on the check rows
    of the head alone (40 epochs) and of head then top blocks (15 + 25 epochs), the two runs it chooses between.

    The head's first 15 epochs are shared: from there one copy goes on alone,
    the other with the top blocks learning too, as the "best" preset does.
    """
    import keras
    import numpy as np

    from tlcore.model import blocks as blocks_module
    from tlcore.model.build import build_classifier
    from tlcore.training import features as features_module
    from tlcore.training import second_phase

    keras.utils.set_random_seed(seed)
    parts = build_classifier(backbone, num_classes=classes, weights="imagenet", seed=seed)
    blocks = blocks_module.backbone_blocks(backbone, parts.backbone)
    trainable = blocks_module.parse_freeze(f"top:{TOP_BLOCKS}", [block.name for block in blocks])
    blocks_module.apply_freezing(parts.backbone, blocks, trainable)
    plan = features_module.plan_feature_cache(parts)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)

    def compile_model(model, rate):
        model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss)

    trial = second_phase.make_trial(parts, plan, blocks, trainable, compile_model)
    plain_pooled, plain_boundary = np.asarray(pooled[0]), np.asarray(boundary[0])
    started = time.monotonic()
    decision = second_phase.decide(trial, plain_boundary[train_rows], train_labels, classes, learning_rate=LEARNING_RATE,
                                   block_learning_rate=LEARNING_RATE * TOP_RATE_FACTOR, batch_size=BATCH_SIZE, seed=seed)
    check_seconds = time.monotonic() - started
    targets = np.eye(classes, dtype="float32")[train_labels]

    def fit_epochs(model, features, epochs, best):
        for _ in range(epochs):
            model.fit(features[train_rows], targets, batch_size=BATCH_SIZE, epochs=1, shuffle=True, verbose=0)
            probabilities = np.asarray(model.predict(features[check_rows], batch_size=64, verbose=0))
            accuracy, check_loss = epoch_scores(probabilities, check_labels)
            best = max(best, (accuracy, -check_loss)) if best else (accuracy, -check_loss)
        return best

    trial.set_blocks_learning(False)
    compile_model(trial.head, LEARNING_RATE)
    shared = fit_epochs(trial.head, plain_pooled, HEAD_EPOCHS, None)
    snapshot = trial.top.get_weights()
    head_only = fit_epochs(trial.head, plain_pooled, TOP_EPOCHS, shared)
    trial.top.set_weights(snapshot)
    trial.set_blocks_learning(True)
    compile_model(plan.top, LEARNING_RATE * TOP_RATE_FACTOR)
    started = time.monotonic()
    with_blocks = fit_epochs(plan.top, plain_boundary, TOP_EPOCHS, shared)
    return decision, head_only[0], with_blocks[0], time.monotonic() - started, check_seconds


def run_second_phase(cache: pathlib.Path, folders: dict, seeds: list[int], backbones) -> list[dict]:
    """Per dataset, backbone and seed: head alone, head + blocks, and what a decision on the training pictures picks."""
    rows = []
    for seed in seeds:  # every dataset with one seed first: a run cut short still covers them all
        for name, folder in folders.items():
            for backbone in backbones:
                pooled, index = load_features(cache, name, backbone, "pooled")
                boundary, _ = load_features(cache, name, backbone, "boundary")
                train_rows, train_labels, val_rows, val_labels, classes = split_rows(folder, seed, index)
                decision, head_only, with_blocks, seconds, check_seconds = two_arms(
                    backbone, pooled, boundary, train_rows, train_labels, val_rows, val_labels, classes, seed)
                keep = decision.keep
                decided = with_blocks if keep else head_only
                gain = "n/a" if decision.head_accuracy is None else f"{100 * (decision.blocks_accuracy - decision.head_accuracy):+.1f}"
                for arm, accuracy in (("head only", head_only), ("head + top blocks", with_blocks), ("decided", decided)):
                    rows.append({"dataset": name, "backbone": backbone, "seed": seed, "arm": arm, "accuracy": accuracy})
                print(f"| {name} | {backbone} | {seed} | {head_only:.3f} | {with_blocks:.3f} | "
                      f"{gain} | {'blocks' if keep else 'head only'} | {decided:.3f} | "
                      f"{seconds:.0f} | {check_seconds:.0f} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(pathlib.Path(tempfile.gettempdir()) / "tlcore-head-recipe"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--second-phase", action="store_true", help="compare the head alone with head + top blocks")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--datasets", nargs="+", help="names of the datasets to run (all when none)")
    parser.add_argument("--variants", nargs="*", help="names of the head variants to run (all when none)")
    args = parser.parse_args()
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TLCORE_HOME", str(cache / "tlcore-home"))
    use_shared_weights(cache)
    folders = dataset_folders(cache)
    if args.datasets:
        folders = {name: folder for name, folder in folders.items() if name in args.datasets}
    for name, folder in folders.items():
        for backbone in args.backbones:
            extract(cache, name, folder, backbone)
    if args.extract_only:
        return
    if args.second_phase:
        print("| dataset | backbone | seed | head only | head + top blocks | inner gain (points) | decided | "
              "decided val | blocks' phase (s) | check (s) |")
        print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
        print_means(run_second_phase(cache, folders, args.seeds, args.backbones), key="arm")
        return
    wanted = [variant for variant in VARIANTS if not args.variants or variant.name in args.variants]
    print("| dataset | backbone | seed | variant | val accuracy (best epoch) | weight decay |")
    print("|---|---|---:|---|---:|---:|")
    print_means(run_variants(cache, folders, args.seeds, wanted, args.backbones))


if __name__ == "__main__":
    main()
