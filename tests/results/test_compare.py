"""Two runs side by side (`compare_runs`) and the pictures of confusion-matrix cells (`cell_pictures`)."""

import json

import numpy as np
import pytest

from tlcore.errors import InputError
from tlcore.results.compare import compare_runs
from tlcore.results.evaluation import cell_pictures, classification_report

CLASSES = ["cat", "dog"]


def write_run(folder, truth, said, files):
    """A run folder with just what a comparison reads: config, split and evaluation."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"data": "pets"}))
    probabilities = np.full((len(truth), 2), 0.2)
    probabilities[np.arange(len(truth)), [CLASSES.index(name) for name in said]] = 0.8
    report = classification_report([CLASSES.index(name) for name in truth], probabilities, CLASSES, files)
    (folder / "evaluation.json").write_text(json.dumps({"val": report}))
    (folder / "split.json").write_text(json.dumps({"val": [[f, t, f] for f, t in zip(files, truth, strict=True)]}))
    return folder


def test_cell_pictures_are_the_pictures_of_the_chosen_cells_most_confident_first():
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]])
    report = classification_report([0, 0, 0, 1], probabilities, CLASSES, ["a", "b", "c", "d"])

    assert [row["file"] for row in cell_pictures(report, [("cat", "dog")])] == ["b", "c"]
    assert [row["file"] for row in cell_pictures(report, [("cat", "cat"), ("dog", "dog")])] == ["a", "d"]
    assert [row["file"] for row in cell_pictures(report, None)] == ["b", "c"]  # every mistake
    assert cell_pictures(report, [("dog", "cat")]) == []


def test_a_report_without_its_pictures_still_gives_the_mistakes():
    report = {"mistakes": [{"file": "b", "true": "cat", "predicted": "dog", "confidence": 0.7}]}

    assert [row["file"] for row in cell_pictures(report, [("cat", "dog")])] == ["b"]
    assert cell_pictures(report, [("cat", "cat")]) == []


def test_the_comparison_says_what_was_fixed_what_is_new_and_what_is_no_longer_checked(tmp_path):
    before = write_run(tmp_path / "before", ["cat", "cat", "dog", "dog"], ["dog", "cat", "dog", "cat"], ["a", "b", "c", "d"])
    # "a" was a dog in the cats' folder: moved to dog, now right; "d" left out; "b" newly wrong; "e" newly checked.
    after = write_run(tmp_path / "after", ["dog", "cat", "dog", "dog"], ["dog", "dog", "dog", "dog"], ["a", "b", "c", "e"])

    comparison = compare_runs(before, after)

    assert comparison["before"]["accuracy"] == 0.5 and comparison["after"]["accuracy"] == 0.75
    assert comparison["accuracy_change"] == pytest.approx(0.25)
    assert [row["file"] for row in comparison["fixed"]] == ["a"]
    assert comparison["fixed"][0]["true_before"] == "cat" and comparison["fixed"][0]["true_after"] == "dog"
    assert [row["file"] for row in comparison["new_mistakes"]] == ["b"]
    assert [row["file"] for row in comparison["no_longer_checked"]] == ["d"]
    assert [row["file"] for row in comparison["newly_checked"]] == ["e"]
    assert comparison["same_pictures"] == {"images": 3, "accuracy_before": pytest.approx(2 / 3),
                                           "accuracy_after": pytest.approx(2 / 3)}
    assert {row["class"] for row in comparison["per_class"]} == {"cat", "dog"}


def test_comparing_with_a_run_not_measured_yet_says_so(tmp_path):
    before = write_run(tmp_path / "before", ["cat"], ["cat"], ["a"])
    (tmp_path / "after").mkdir()
    (tmp_path / "after" / "config.json").write_text("{}")

    with pytest.raises(InputError, match="no val evaluation yet"):
        compare_runs(before, tmp_path / "after")
