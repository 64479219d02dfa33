"""Tests for tlcore.evaluation: the report's arithmetic by hand, and evaluating a run folder."""

import json
import math

import numpy as np
import pytest

from tlcore.errors import InputError
from tlcore.results.evaluation import classification_report, evaluate_run, read_evaluation, write_evaluation
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record

CLASSES = ["cat", "dog", "owl"]
# Six images, two per class. Predicted: cat, dog | dog, dog | owl, cat.
TRUE = [0, 0, 1, 1, 2, 2]
PROBABILITIES = [
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.1, 0.8],
    [0.9, 0.05, 0.05],
]
FILES = [f"/data/{CLASSES[label]}/{index}.jpg" for index, label in enumerate(TRUE)]


@pytest.fixture
def report():
    return classification_report(np.array(TRUE), np.array(PROBABILITIES), CLASSES, FILES)


def test_confusion_matrix_rows_are_true_columns_predicted(report):
    assert report["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["class_names"] == CLASSES
    assert report["images"] == 6


def test_accuracy_and_loss(report):
    assert report["accuracy"] == pytest.approx(4 / 6)
    # Minus the mean log-probability given to the true class.
    expected_loss = -np.mean(np.log([0.7, 0.3, 0.8, 0.5, 0.8, 0.05]))
    assert report["loss"] == pytest.approx(expected_loss)


def test_per_class_precision_recall_f1(report):
    rows = {row["class"]: row for row in report["per_class"]}

    # cat: predicted 2 times, right once; 2 cats, 1 found.
    assert rows["cat"]["precision"] == pytest.approx(1 / 2)
    assert rows["cat"]["recall"] == pytest.approx(1 / 2)
    assert rows["cat"]["f1"] == pytest.approx(1 / 2)
    # dog: predicted 3 times, right twice; both dogs found.
    assert rows["dog"]["precision"] == pytest.approx(2 / 3)
    assert rows["dog"]["recall"] == pytest.approx(1.0)
    assert rows["dog"]["f1"] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    # owl: predicted once, right; one of two owls found.
    assert rows["owl"]["precision"] == pytest.approx(1.0)
    assert rows["owl"]["recall"] == pytest.approx(1 / 2)
    assert rows["owl"]["f1"] == pytest.approx(2 / 3)
    assert [row["support"] for row in report["per_class"]] == [2, 2, 2]
    assert report["macro_f1"] == pytest.approx((1 / 2 + 0.8 + 2 / 3) / 3)


def test_mistakes_are_listed_most_confident_first(report):
    assert report["mistakes_total"] == 2
    assert report["mistakes"] == [
        {"file": FILES[5], "true": "owl", "predicted": "cat", "confidence": pytest.approx(0.9)},
        {"file": FILES[1], "true": "cat", "predicted": "dog", "confidence": pytest.approx(0.6)},
    ]


def test_report_is_json_friendly(report):
    assert json.loads(json.dumps(report))["confusion"] == report["confusion"]


def test_class_without_images_scores_zero_and_is_left_out_of_macro_f1():
    report = classification_report([0, 0, 1], [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.9, 0.0]], CLASSES)

    owl = report["per_class"][2]
    assert (owl["precision"], owl["recall"], owl["f1"], owl["support"]) == (0.0, 0.0, 0.0, 0)
    cat_f1, dog_f1 = 2 / 3, 2 / 3
    assert report["macro_f1"] == pytest.approx((cat_f1 + dog_f1) / 2)
    assert report["mistakes"][0]["file"] is None


def test_empty_split_has_no_accuracy():
    report = classification_report(np.zeros(0), np.zeros((0, 3)), CLASSES)

    assert report["images"] == 0
    assert report["accuracy"] is None and report["loss"] is None and report["macro_f1"] is None
    assert report["confusion"] == [[0, 0, 0]] * 3


def test_loss_of_a_zero_probability_is_large_but_finite():
    report = classification_report([0], [[0.0, 1.0, 0.0]], CLASSES)

    assert math.isfinite(report["loss"]) and report["loss"] > 10


def _small_report() -> dict:
    return classification_report(np.array([0, 1]), np.array([[0.8, 0.2], [0.6, 0.4]]), ["a", "b"], ["x.png", "y.png"])


def test_write_and_read_evaluation(tmp_path):
    write_evaluation(tmp_path, {"val": _small_report()})

    assert read_evaluation(tmp_path) == {"val": _small_report()}
    assert read_evaluation(tmp_path / "missing") is None


# ----------------------------------------------------------------- evaluate_run on a run folder


@pytest.fixture(scope="module")
def saved_run(shared_tiny_dataset, calibrated_classifier, tmp_path_factory):
    """A run folder made by hand: a model, labels and a split, no evaluation yet."""
    from tlcore.training.callbacks import save_model_atomic

    run_dir = tmp_path_factory.mktemp("run")
    parts = calibrated_classifier("mobilenet_025")
    save_model_atomic(parts.model, run_dir / run_folder.MODEL_FILE)
    names = ["circles", "squares", "stripes"]
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, {"data": str(shared_tiny_dataset)})
    run_folder.write_json_atomic(run_dir / run_folder.LABELS_FILE, names)
    entries = {
        split: [[f"{name}/{name}_{i:02d}.png", name, str(shared_tiny_dataset / name / f"{name}_{i:02d}.png")]
                for name in names for i in indices]
        for split, indices in (("train", (0, 2)), ("val", (4,)), ("test", (6,)))
    }
    run_folder.write_json_atomic(run_dir / run_folder.SPLIT_FILE, entries)
    return run_dir, parts.model


def test_evaluate_run_measures_val_and_test_with_the_saved_model(saved_run, tmp_path):
    run_dir, model = saved_run

    reports = evaluate_run(run_dir, recompute=True)

    assert set(reports) == {"val", "test"}
    assert reports["val"]["images"] == 3 and reports["test"]["images"] == 3
    assert read_evaluation(run_dir) == json.loads(json.dumps(reports))
    from tlcore.results.prediction import prepare_images

    files = [entry[2] for entry in json.loads((run_dir / run_folder.SPLIT_FILE).read_text())["val"]]
    expected = classification_report([0, 1, 2], model.predict(prepare_images(files, 32), verbose=0), reports["val"]["class_names"])
    assert reports["val"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert reports["val"]["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_evaluate_run_returns_the_saved_report_without_recomputing(saved_run):
    run_dir, _ = saved_run
    saved = dict(_small_report(), accuracy=0.123)
    write_evaluation(run_dir, {"val": saved})

    assert evaluate_run(run_dir) == {"val": saved}


def test_evaluate_run_when_the_images_are_gone(saved_run, tmp_path):
    run_dir, _ = saved_run
    split = json.loads((run_dir / run_folder.SPLIT_FILE).read_text())
    moved = tmp_path / "run"
    moved.mkdir()
    for name in (run_folder.CONFIG_FILE, run_folder.LABELS_FILE, run_folder.MODEL_FILE):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    split["val"][0][2] = str(tmp_path / "deleted.png")
    run_folder.write_json_atomic(moved / run_folder.SPLIT_FILE, split)

    with pytest.raises(InputError, match="gone.*restore the dataset folder"):
        evaluate_run(moved, recompute=True)


def test_evaluate_run_without_a_model(tmp_path):
    run_folder.write_json_atomic(tmp_path / run_folder.CONFIG_FILE, {"data": "x"})
    run_record.write_status(tmp_path, "failed", "no images")

    with pytest.raises(InputError, match="has no model yet.*'failed'"):
        evaluate_run(tmp_path)


def test_evaluate_run_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a tlcore run folder"):
        evaluate_run(tmp_path)
