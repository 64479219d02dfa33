"""The pages that fix the data in place, driven with AppTest: Data page edits, the Evaluate explorer, training again.

AppTest cannot click a Plotly chart, so the chart's selection is stubbed in
session state (the page reads it as Streamlit hands it over), and the function
that maps a selection to cells is tested directly. No model is loaded: the
heatmaps and the training process are patched.
"""

import json
import os
import time

import numpy as np
from test_app_pages import (  # noqa: F401  (fixtures are used by name)
    CLASSES,
    RUN_NAME,
    _fake_start,
    _png,
    _remember_dataset,
    _run,
    _texts,
    _write_run,
    dataset,
    home,
    no_hidden_bugs,
    populated,
)

import tlcore
import tlcore.results.explain
import tlcore.results.prediction
import tlcore.training.again
import tlcore.training.launch
from ui import explorer

CHART = "evaluate_confusion_val"


def _no_model(monkeypatch) -> list:
    """Heatmaps without a model: each explained file gets a plain picture; returns the files explained."""
    explained = []

    def explain_files(run_dir, files, class_name=None, model=None, labels=None, with_doubt=False):
        explained.extend(files)
        return [tlcore.Explanation(file, "circle", 0.7, "circle", (("circle", 0.7),), np.ones((2, 2)), "out_relu",
                                   _png("red")) for file in files]

    monkeypatch.setattr(tlcore.results.prediction, "load_run_model", lambda run_dir: ("model", CLASSES))
    monkeypatch.setattr(tlcore.results.explain, "explain_files", explain_files)
    return explained


def _selection(*cells) -> dict:
    points = [{"x": said, "y": true, "customdata": [true, said], "curve_number": 1} for true, said in cells]
    return {"selection": {"points": points, "point_indices": list(range(len(points))), "box": [], "lasso": []}}


def test_a_selection_names_cells_by_their_true_and_predicted_class():
    points = [{"x": "b", "y": "a", "customdata": ["a", "b"]}, {"x": "c", "y": "c"}, {"x": "b", "y": "a"}]

    assert explorer.cells_from_points(points) == [("a", "b"), ("c", "c")]
    assert explorer.cells_from_points([]) == []


def test_a_clicked_cell_shows_only_its_pictures_with_their_heatmaps(populated, monkeypatch):
    explained = _no_model(monkeypatch)
    app = _run("pages/evaluate.py")
    assert "Pictures it got wrong (1)" in _texts(app) and not explained  # no click yet: no model loaded

    app.session_state[CHART] = _selection(("circle", "circle"))
    app.run()

    assert not app.exception, app.exception
    assert "Pictures where it is circle, said circle (1)" in _texts(app)
    assert "is **circle**, said **circle** (70% sure, right)" in _texts(app)
    assert [name.rsplit("/", 1)[-1] for name in explained] == ["circle_000.jpg"]
    assert app.get("image")[0].captions == ["circle_000.jpg"]


def test_the_menu_chooses_a_cell_as_a_click_would(populated, monkeypatch):
    _no_model(monkeypatch)
    app = _run("pages/evaluate.py")

    app.selectbox(key="evaluate_cell_val").set_value(("circle", "triangle")).run()

    assert not app.exception
    assert "Pictures where it is circle, said triangle (1)" in _texts(app)


def test_a_mistake_moved_to_its_class_is_trained_again_with_the_same_settings(populated, dataset, home, monkeypatch):
    _no_model(monkeypatch)
    calls = []
    monkeypatch.setattr(tlcore.training.launch, "queue_training", _fake_start(home, calls))
    app = _run("pages/evaluate.py")
    wrong = next(box for box in app.selectbox if box.key.endswith("_move"))

    wrong.set_value("triangle").run()

    assert not app.exception
    assert "**Moved to 'triangle'** for the next training" in _texts(app)
    app.button(key="evaluate_train_again").click().run()
    assert not app.exception, app.exception
    moved = sorted((dataset / "circle").glob("*.jpg"))[1].relative_to(dataset).as_posix()
    assert calls[0].relabels == ((moved, "triangle"),) and calls[0].epochs == 3
    new_run = home / "runs" / app.query_params["run"]
    assert tlcore.previous_run(new_run).name == RUN_NAME
    assert "Training again with your fixes" in app.get("progress")[0].proto.text


def test_after_training_again_the_two_runs_are_shown_side_by_side(populated, dataset, home):
    after = home / "runs" / "20261122-130000-mobilenetv2_035-shapes"
    after.mkdir()
    for name in ("config.json", "labels.json", "split.json", "model.keras"):
        (after / name).write_bytes((populated / name).read_bytes())
    report = json.loads((populated / "evaluation.json").read_text())
    report["val"]["accuracy"] = 1.0
    for row in report["val"]["pictures"]:
        row["predicted"] = row["true"]
    report["val"]["mistakes"], report["val"]["mistakes_total"] = [], 0
    (after / "evaluation.json").write_text(json.dumps(report))
    (after / "status.json").write_text(json.dumps({"state": "completed", "ended_at": time.time()}))
    (after / "previous_run.json").write_text(json.dumps({"run": RUN_NAME, "run_dir": str(populated)}))

    app = _run("pages/evaluate.py", run=after.name)

    assert not app.exception, app.exception
    assert "Before and after your fixes" in _texts(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Before"] == "88%" and metrics["After"] == "100%"
    assert "Fixed: wrong before, right now (1)" in _texts(app)


def test_moving_one_picture_on_the_data_page_changes_the_counts_and_the_training(home, dataset, monkeypatch):
    _remember_dataset(home, dataset)
    app = _run("pages/data.py")
    assert "**square** (6 pictures)" in _texts(app)

    app.selectbox(key="data_change_one_file").set_value("circle/circle_000.jpg").run()
    app.selectbox(key="data_change_one_move").set_value("square").run()

    assert not app.exception
    assert "**square** (7 pictures)" in _texts(app) and "**circle** (5 pictures)" in _texts(app)
    assert {m.label: m.value for m in app.metric}["Your changes"] == "1"
    calls = []
    monkeypatch.setattr(tlcore.training.launch, "queue_training", _fake_start(home, calls))
    _run("pages/train.py").button(key="train_start").click().run()
    assert calls[0].relabels == (("circle/circle_000.jpg", "square"),)


def test_a_change_can_be_undone(home, dataset):
    state = {"dataset_path": str(dataset), "dataset_edits": {str(dataset): {
        "excluded_files": ["star/star_000.jpg"], "relabels": {"circle/circle_000.jpg": "square"}}}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "app_state.json").write_text(json.dumps(state))
    app = _run("pages/data.py")
    assert {m.label: m.value for m in app.metric}["Pictures"] == "23"

    app.button(key="data_changes_undo_all").click().run()

    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Pictures"] == "24"
    assert json.loads((home / "app_state.json").read_text())["dataset_edits"][str(dataset)]["relabels"] == {}
    assert os.path.exists(dataset / "star" / "star_000.jpg")
