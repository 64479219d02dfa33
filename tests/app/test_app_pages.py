"""The Streamlit pages, driven with AppTest: every page renders, empty and with a run; widgets do their job.

No training happens here: a populated state is a small fake run folder written by
the test, and the calls that would start a process or load TensorFlow are patched.
"""

import ast
import io
import json
import logging
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import streamlit as st
from conftest import smooth_picture
from PIL import Image
from streamlit.testing.v1 import AppTest

import tlcore
import tlcore.data.demo
import tlcore.export.bundle
import tlcore.model.backbones
import tlcore.model.weights_import
import tlcore.results.explain
import tlcore.results.prediction
import tlcore.runs.history
import tlcore.runs.locks
import tlcore.training.launch
from tlcore import paths
from tlcore.data.demo import generate_demo_dataset
from tlcore.model.weights_import import ImportedWeights
from tlcore.results.evaluation import classification_report
from ui import audit_cache, charts, messages

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGES = ["app.py", "pages/data.py", "pages/model.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py",
         "pages/export.py"]
RUN_NAME = "20261122-120000-mobilenetv2_035-shapes"
CLASSES = ["circle", "square", "star", "triangle"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh TLCORE_HOME (never ~/.tlcore), no shared server folders, no cached results."""
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    monkeypatch.chdir(REPO)
    st.cache_data.clear()
    audit_cache.forget_audits()  # the base audits this server process keeps
    st.cache_resource.clear()
    return tmp_path / "home"


@pytest.fixture(autouse=True)
def no_hidden_bugs(caplog):
    """A page that hits a bug shows a short apology, which `not app.exception` cannot see: the log can.

    A test that causes a bug on purpose checks the log itself, then calls `caplog.clear()`.
    """
    caplog.set_level(logging.ERROR, logger=messages.LOGGER.name)
    yield
    bugs = [record for record in caplog.get_records("call") if record.name == messages.LOGGER.name]
    assert not bugs, [record.getMessage() + "\n" + (record.exc_text or "") for record in bugs]


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """A tiny demo dataset (6 pictures of 64 px per class) standing in for the real one."""
    folder = generate_demo_dataset(tmp_path / "shapes", images_per_class=6, image_size=64)
    monkeypatch.setattr(tlcore.data.demo, "ensure_demo_dataset", lambda: folder)
    return folder


def _remember_dataset(home: pathlib.Path, folder: pathlib.Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "app_state.json").write_text(json.dumps({"dataset_path": str(folder), "last_run": RUN_NAME}))


def _write_run(home: pathlib.Path, folder: pathlib.Path, state: str = "completed") -> pathlib.Path:
    """A finished run folder as training leaves it, without a real model."""
    run_dir = home / "runs" / RUN_NAME
    run_dir.mkdir(parents=True)
    config = tlcore.TrainConfig(data=str(folder), epochs=3)
    (run_dir / "config.json").write_text(config.to_json())
    now = time.time()
    (run_dir / "status.json").write_text(json.dumps(
        {"state": state, "message": "training finished.", "started_at": now - 30, "ended_at": now, "epoch": 3,
         "epochs": 3, "feature_cache": "on: after global pooling"}))
    rows = [{"type": "progress", "phase": "features", "split": "train", "done": 16, "total": 16}]
    for epoch in (1, 2, 3):
        rows.append({"type": "progress", "phase": "train", "epoch": epoch, "epochs": 3, "batch": 1, "batches": 1,
                     "loss": 1.0 / epoch, "eta_s": 3 - epoch})
        rows.append({"type": "epoch", "phase": "train", "epoch": epoch, "loss": 1.2 / epoch, "accuracy": 0.3 * epoch,
                     "val_loss": 1.3 / epoch, "val_accuracy": 0.25 * epoch + 0.1, "lr": 0.001, "epoch_s": 0.5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (run_dir / "labels.json").write_text(json.dumps(CLASSES))
    files = [str(path) for name in CLASSES for path in sorted((folder / name).glob("*.jpg"))[:2]]
    truth = np.repeat(np.arange(4), 2)
    probabilities = np.full((8, 4), 0.1)
    probabilities[np.arange(8), truth] = 0.7
    probabilities[1] = [0.1, 0.1, 0.1, 0.7]  # one circle taken for a triangle
    report = classification_report(truth, probabilities, CLASSES, files)
    (run_dir / "evaluation.json").write_text(json.dumps({"val": report}))
    (run_dir / "split.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    (run_dir / "model.keras").write_bytes(b"not a real model")
    return run_dir


@pytest.fixture
def populated(home, dataset):
    _remember_dataset(home, dataset)
    return _write_run(home, dataset)


def _run(page: str, **query) -> AppTest:
    app = AppTest.from_file(str(REPO / page), default_timeout=60)
    app.query_params.update(query)
    return app.run()


def _texts(app: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "subheader")
             for element in getattr(app, kind)]
    return "\n".join(str(part) for part in parts)


# ----------------------------------------------------------------- every page renders


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_nothing_chosen_yet(page):
    app = _run(page)

    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_a_finished_run(page, populated):
    app = _run(page)

    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]


def test_entry_page_says_where_things_stand(populated):
    app = _run("app.py")

    text = _texts(app)
    assert "shapes" in text and "4 classes" in text
    assert "97%" in text or "right" in text
    assert app.button(key="home_use_demo").label == "Use demo dataset"


def test_entry_page_demo_shortcut_chooses_the_demo(dataset, home):
    app = _run("app.py")
    app.button(key="home_use_demo").click().run()

    assert not app.exception
    assert json.loads((home / "app_state.json").read_text())["dataset_path"] == str(dataset)


# ----------------------------------------------------------------- Data


def test_demo_button_shows_the_audit(dataset, home):
    app = _run("pages/data.py")
    assert "No pictures chosen yet" in _texts(app)

    app.button(key="data_use_demo").click().run()

    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Classes"] == "4" and metrics["Pictures"] == "24"
    assert "Ready: 4 classes" in _texts(app)
    assert json.loads((home / "app_state.json").read_text())["dataset_path"] == str(dataset)


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _picture_png(seed: int) -> bytes:
    buffer = io.BytesIO()
    smooth_picture(seed).save(buffer, format="PNG")
    return buffer.getvalue()


def test_folder_upload_becomes_the_dataset(home):
    app = _run("pages/data.py")
    files = [(f"pets/{name}/{index}.png", _picture_png(10 * seed + index), "image/png")  # different pictures, not copies
             for seed, name in enumerate(("cats", "dogs")) for index in range(3)]
    files.append(("../../pets/cats/evil.png", _png("green"), "image/png"))  # stays inside the upload

    app.file_uploader(key="data_folder_upload").set_value(files).run()
    app.button(key="data_use_folder_upload").click().run()

    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Classes"] == "2"
    dataset = pathlib.Path(app.session_state["dataset_path"])
    assert dataset.parent.parent == home / "uploads"
    assert dataset.name == "pets" and "pets" in _texts(app), "the dataset shows the uploaded folder's name"
    assert sorted(p.name for p in dataset.iterdir()) == ["cats", "dogs"]
    assert len(list((dataset / "cats").iterdir())) == 4
    assert not (home.parent / "pets").exists()


def test_server_folder_is_off_unless_the_operator_shares_one(tmp_path, monkeypatch, dataset):
    app = _run("pages/data.py")
    assert "turned off" in _texts(app)

    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(dataset))
    app = _run("pages/data.py")
    app.text_input(key="data_server_path").set_value(str(tmp_path)).run()
    app.button(key="data_use_server_path").click().run()
    assert "outside the folders" in app.error[0].value

    app.text_input(key="data_server_path").set_value("").run()
    app.selectbox(key="data_server_pick").set_value(str(dataset.resolve() / "star")).run()
    app.button(key="data_use_server_path").click().run()
    assert app.session_state["dataset_path"] == str(dataset.resolve() / "star")


def test_exact_copies_can_be_left_out_for_training(home, dataset, monkeypatch):
    (dataset / "star" / "star_copy.jpg").write_bytes((dataset / "star" / "star_000.jpg").read_bytes())
    _remember_dataset(home, dataset)
    app = _run("pages/data.py")

    before = {metric.label: metric.value for metric in app.metric}

    app.button(key="data_exclude_exact").click().run()

    assert not app.exception
    assert app.session_state["dataset_edits"][str(dataset)]["excluded_files"] == ["star/star_copy.jpg"]
    after = {metric.label: metric.value for metric in app.metric}
    assert (before["Pictures"], after["Pictures"]) == ("25", "24"), "the counts change at once"
    assert after["Your changes"] == "1"
    calls = []
    monkeypatch.setattr(tlcore.training.launch, "queue_training", _fake_start(home, calls))
    train = _run("pages/train.py")
    train.button(key="train_start").click().run()
    assert calls[0].excluded_files == ("star/star_copy.jpg",)


# ----------------------------------------------------------------- Model


def _learning(app: AppTest) -> int:
    return int(next(m.value for m in app.metric if m.label == "Numbers that learn").replace(",", ""))


def test_freezing_preset_changes_the_trainable_count():
    app = _run("pages/model.py")
    assert app.radio(key="model_freeze_preset").value == "auto", "the training preset chooses until the user does"
    assert app.session_state["model_choice"]["freeze"] == "auto"
    app.radio(key="model_freeze_preset").set_value("all").run()
    head_only = _learning(app)

    app.radio(key="model_freeze_preset").set_value("top").run()
    top_blocks = _learning(app)
    app.radio(key="model_freeze_preset").set_value("none").run()
    everything = _learning(app)

    assert not app.exception
    assert head_only < top_blocks < everything
    assert app.session_state["model_choice"]["freeze"] == "none"


def test_picking_a_backbone_changes_the_trainable_count():
    app = _run("pages/model.py")
    app.radio(key="model_freeze_preset").set_value("none").run()
    default = _learning(app)

    app.selectbox(key="model_backbone").set_value("mobilenet_025").run()

    assert not app.exception
    assert _learning(app) != default
    assert app.session_state["model_choice"]["backbone"] == "mobilenet_025"


def test_missing_weights_are_explained_and_can_be_imported(monkeypatch):
    imported = []
    monkeypatch.setattr(tlcore.model.weights_import, "import_weights",
                        lambda path, backbone=None, for_everyone=False: imported.append(
                            (pathlib.Path(path).name, pathlib.Path(path).read_bytes(), for_everyone))
                        or ImportedWeights(path, False))
    app = _run("pages/model.py")
    app.selectbox(key="model_backbone").set_value("resnet50").run()
    assert "not on this computer" in _texts(app)

    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    app.file_uploader(key="model_weights_upload").set_value((name, b"HDF", "application/octet-stream")).run()
    app.button(key="model_import_weights").click().run()

    assert not app.exception
    assert imported == [(name, b"HDF", False)]
    assert "Imported" in app.success[0].value
    assert not any(path.is_file() for path in paths.uploads_dir().rglob("*")), "the upload is not kept"


# ----------------------------------------------------------------- Train


def _fake_start(home: pathlib.Path, calls: list):
    def start_training(config, runs_dir=None, **options):  # as tlcore.queue_training, which the page calls
        calls.append(config)
        run_dir = home / "runs" / "20261122-130000-mobilenetv2_035-shapes"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        # "queued", started by a living process (this one): the page shows it as in progress.
        (run_dir / "status.json").write_text(json.dumps({"state": "queued", "message": "starting", "queued_at": time.time()}))
        (run_dir / "worker.pid").write_text(str(os.getpid()))
        return run_dir

    return start_training


def test_start_training_starts_a_run_and_attaches_to_it(home, dataset, monkeypatch):
    _remember_dataset(home, dataset)
    calls = []
    monkeypatch.setattr(tlcore.training.launch, "queue_training", _fake_start(home, calls))
    app = _run("pages/train.py")
    app.number_input(key="train_epochs_best").set_value(4).run()
    assert "Changed by hand: epochs" in _texts(app)

    app.button(key="train_start").click().run()

    assert not app.exception, app.exception
    assert len(calls) == 1 and calls[0].epochs == 4 and calls[0].data == str(dataset)
    assert calls[0].preset == "best"
    assert app.query_params["run"] == "20261122-130000-mobilenetv2_035-shapes"
    assert app.button(key="train_stop").label == "Stop"
    assert app.get("progress")

    app.button(key="train_stop").click().run()
    assert (home / "runs" / "20261122-130000-mobilenetv2_035-shapes" / "STOP").is_file()


def test_the_time_estimate_knows_when_features_were_kept(home, dataset):
    from tlcore.data.audit import audit_dataset
    from tlcore.training import feature_store

    _remember_dataset(home, dataset)
    before = _texts(_run("pages/train.py"))
    config = tlcore.TrainConfig(data=str(dataset))
    audit = audit_dataset(str(dataset), config.val_split, config.seed, find_duplicates=False)
    records = [record for split in ("train", "val") for record in audit.split_records(split)]
    label = feature_store.entry_label(config.backbone, config.resolved_image_size, set())
    feature_store.FeatureStore("key", label=label).add(
        [feature_store.image_identity(record.path) for record in records], np.zeros((len(records), 4), "float32"))

    after = _texts(_run("pages/train.py"))

    assert "Time: about" in before and "kept" not in before
    assert "kept from an earlier run" in after


def test_the_two_presets_are_offered_with_their_times_and_the_choice_in_words(home, dataset, monkeypatch):
    _remember_dataset(home, dataset)
    calls = []
    monkeypatch.setattr(tlcore.training.launch, "queue_training", _fake_start(home, calls))
    app = _run("pages/train.py")
    preset = app.radio(key="train_preset")
    assert preset.value == "best"
    assert [option.split(":")[0] for option in preset.options] == ["Best quality (recommended)", "Quick check"]
    assert all("on this computer)" in option for option in preset.options)
    assert "What it will do:" in _texts(app)

    preset.set_value("fast").run()
    app.button(key="train_start").click().run()

    assert not app.exception, app.exception
    assert calls[0].preset == "fast" and calls[0].freeze == "all" and not calls[0].two_phase


def test_a_busy_machine_says_what_runs_and_when_it_ends(home, dataset, monkeypatch):
    _remember_dataset(home, dataset)

    def busy(config, runs_dir=None, **options):
        raise tlcore.RunBusyError("another training run is in progress (x-run); it should finish in about 2 min 05 s.")

    monkeypatch.setattr(tlcore.training.launch, "queue_training", busy)
    app = _run("pages/train.py")
    app.button(key="train_start").click().run()

    assert not app.exception
    assert "x-run" in app.error[0].value and "2 min 05 s" in app.error[0].value


def test_a_reload_reattaches_to_the_run_in_the_address(populated):
    app = _run("pages/train.py", run=RUN_NAME)

    assert not app.exception
    assert "Training finished after 3 epoch(s)" in app.success[0].value
    assert len(app.get("plotly_chart")) == 2


def test_the_page_reattaches_to_the_run_training_on_this_machine(home, monkeypatch):
    run_dir = _fake_start(home, [])(tlcore.TrainConfig(data="somewhere"))
    monkeypatch.setattr(tlcore.runs.locks, "current_training_run", lambda: run_dir)

    app = _run("pages/train.py")  # no dataset chosen in this browser, no run in the address

    assert not app.exception
    assert app.query_params["run"] == run_dir.name
    assert app.button(key="train_stop").label == "Stop"
    assert "First choose your pictures" in app.info[0].value


def test_a_bad_run_name_in_the_address_is_not_followed(populated):
    app = _run("pages/train.py", run="../../etc")

    assert not app.exception
    assert "no training called" in app.warning[0].value


# ----------------------------------------------------------------- Evaluate, Predict, Export


def test_evaluate_shows_confusion_per_class_and_mistakes(populated):
    app = _run("pages/evaluate.py")

    assert not app.exception
    assert "88%" in _texts(app)  # 7 of 8 right
    assert app.get("plotly_chart")
    assert app.dataframe
    assert app.get("image")[0].captions == ["circle_001.jpg"]
    assert "is **circle**, said **triangle** (70% sure, wrong)" in _texts(app)


def test_predict_shows_the_top_classes_of_an_upload(populated, monkeypatch):
    monkeypatch.setattr(tlcore.results.prediction, "load_run_model", lambda run_dir: ("model", CLASSES))
    top = (("star", 0.9), ("circle", 0.06), ("square", 0.03), ("triangle", 0.01))
    monkeypatch.setattr(tlcore.results.explain, "explain_bytes", lambda run_dir, model, labels, data, name="upload":
                        tlcore.Explanation(name, "star", 0.9, "star", top, np.ones((2, 2)), "out_relu", _png("red")))
    app = _run("pages/predict.py")

    app.file_uploader(key="predict_upload").set_value(("a.png", _png("white"), "image/png")).run()

    assert not app.exception
    assert "**star** (90% sure)" in _texts(app)
    assert app.get("plotly_chart")
    app.toggle(key="predict_use_camera").set_value(True).run()
    assert app.camera_input(key="predict_camera").label == "Take a picture"


def _report(format: str, agreement: float, differing=()) -> tlcore.ParityReport:
    return tlcore.ParityReport(
        format=format, path=f"/somewhere/{tlcore.export_format(format).file_name}", runtime="a runtime 1.0", split="val",
        pictures=20, agreement=agreement, accuracy=0.9, app_accuracy=0.9, max_probability_difference=0.01,
        size_bytes=2_000_000, latency_ms=3.0, differing=list(differing))


def test_export_makes_the_zip_and_shows_the_parity_table(populated, monkeypatch):
    made = []
    mismatch = {"file": str(populated / "gone.jpg"), "true": "star", "app": "star", "app_probability": 0.55,
                "exported": "circle", "exported_probability": 0.51}

    def make_bundle(run_dir, formats, out=None):
        made.append(list(formats))
        zip_path = pathlib.Path(run_dir) / "export" / "bundle.zip"
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        zip_path.write_bytes(b"PK zip")
        reports = (_report("tflite", 1.0), _report("tflite-int8", 0.95, [mismatch]))
        return tlcore.Bundle(zip_path, tuple(formats), reports)

    monkeypatch.setattr(tlcore.export.bundle, "make_bundle", make_bundle)
    app = _run("pages/export.py")
    assert not app.get("download_button")
    assert "predict_onnx.py" in " ".join(expander.label for expander in app.expander)
    app.multiselect(key="export_formats").set_value(["tflite", "tflite-int8"]).run()
    app.button(key="export_prepare").click().run()

    assert not app.exception
    assert made == [["tflite", "tflite-int8"]]
    table = app.dataframe[0].value
    assert list(table["file"]) == ["model.tflite", "model.int8.tflite"]
    assert list(table["agrees with the app"]) == ["100.0%", "95.0%"]
    assert "time per picture" in table.columns and "largest probability difference" in table.columns
    assert [error.value for error in app.error] == [
        "TensorFlow Lite / LiteRT, 8-bit (.int8.tflite) answers differently from the app on 1 of 20 pictures (5%), "
        "more than 1%. Use it only where that is acceptable."]
    assert "is star: app star 55%, file circle 51%" in _texts(app)
    assert app.get("download_button")


def test_export_offers_a_zip_made_before_and_deletes_runs(populated, monkeypatch):
    saved = tlcore.Bundle(populated / "export" / "old.zip", tuple(tlcore.DEFAULT_BUNDLE_FORMATS),
                          tuple(_report(name, 1.0) for name in tlcore.DEFAULT_BUNDLE_FORMATS))
    monkeypatch.setattr(tlcore.export.bundle, "saved_bundle", lambda run_dir: saved)
    saved.path.parent.mkdir(parents=True)
    saved.path.write_bytes(b"PK zip")
    app = _run("pages/export.py")

    assert not app.exception and not app.error
    assert len(app.dataframe[0].value) == len(tlcore.DEFAULT_BUNDLE_FORMATS)
    assert app.get("download_button")

    app.checkbox(key="export_delete_confirm").check().run()
    app.button(key="export_delete").click().run()
    assert not populated.exists()
    assert "No trainings yet." in _texts(app)


# ----------------------------------------------------------------- the web server stays light

_NO_TENSORFLOW_SCRIPT = """
import sys
from streamlit.testing.v1 import AppTest
for page in sys.argv[1:]:
    app = AppTest.from_file(page, default_timeout=60).run()
    assert not app.exception, (page, app.exception)
heavy = sorted(name for name in ("tensorflow", "keras") if name in sys.modules)
print("heavy modules:", heavy)
sys.exit(1 if heavy else 0)
"""


def test_pages_without_a_model_never_import_tensorflow(populated, home):
    pages = [str(REPO / page) for page in ("app.py", "pages/data.py", "pages/model.py", "pages/train.py",
                                           "pages/evaluate.py", "pages/export.py")]
    result = subprocess.run([sys.executable, "-c", _NO_TENSORFLOW_SCRIPT, *pages], capture_output=True, text=True,
                            env=dict(os.environ, TLCORE_HOME=str(home)), timeout=120, cwd=REPO)

    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_the_train_page_says_whether_the_top_blocks_learned_and_why(populated):
    from tlcore.training.second_phase import SecondPhaseDecision

    decision = SecondPhaseDecision(keep=False, head_accuracy=0.9, blocks_accuracy=0.85, held_out=20)
    status_file = populated / "status.json"
    status_file.write_text(json.dumps({**json.loads(status_file.read_text()), "second_phase": decision.to_dict()}))

    app = _run("pages/train.py", run=RUN_NAME)

    assert not app.exception, app.exception
    assert "The top blocks did not help on these pictures" in _texts(app)
    assert "so only the last layer learns" in _texts(app)


def test_a_finished_run_can_be_continued(populated, monkeypatch):
    calls = []

    def start_training(config, runs_dir=None, resume_run=None, resume_epochs=5):
        calls.append((config, pathlib.Path(resume_run).name, resume_epochs))
        return pathlib.Path(resume_run)

    monkeypatch.setattr(tlcore.training.launch, "queue_training", start_training)
    app = _run("pages/train.py", run=RUN_NAME)
    app.number_input(key="train_resume_epochs").set_value(7).run()

    app.button(key="train_resume").click().run()

    assert not app.exception, app.exception
    assert calls == [(None, RUN_NAME, 7)]


# ----------------------------------------------------------------- no page shows a traceback


def _guarded_page(raise_what: str):
    """A page whose body, inside ui's wrapper, ends in `raise_what` ("tlcore", "bug", "stop" or "rerun")."""
    import streamlit as st

    import tlcore
    from ui import messages

    with messages.shown_errors():
        st.markdown("before")
        if raise_what == "tlcore":
            raise tlcore.InputError("that folder has no pictures; add some.")
        if raise_what == "bug":
            raise RuntimeError("a bug with a secret path /home/someone")
        if raise_what == "stop":
            st.stop()
        if raise_what == "rerun" and not st.session_state.get("reran"):
            st.session_state["reran"] = True
            st.rerun()
        st.markdown("after")


def test_a_tlcore_error_is_shown_as_its_message_and_stops_the_page():
    app = AppTest.from_function(_guarded_page, args=("tlcore",)).run()

    assert not app.exception
    assert [e.value for e in app.error] == ["that folder has no pictures; add some."]
    assert "after" not in _texts(app)


def test_a_bug_is_a_short_message_on_the_page_and_a_traceback_in_the_log(caplog):
    app = AppTest.from_function(_guarded_page, args=("bug",)).run()

    assert not app.exception
    assert "Something went wrong" in app.error[0].value and "server log" in app.error[0].value
    assert "secret" not in app.error[0].value and "after" not in _texts(app)
    logged = [r for r in caplog.get_records("call") if r.name == "tlcore.app"]
    assert logged and "RuntimeError: a bug" in logged[0].exc_text
    caplog.clear()


@pytest.mark.parametrize("control", ["stop", "rerun"])
def test_stop_and_rerun_pass_through_the_wrapper(control):
    app = AppTest.from_function(_guarded_page, args=(control,)).run()

    assert not app.exception and not app.error
    assert ("after" in _texts(app)) == (control == "rerun")  # a rerun runs the page again, to its end


def test_a_bug_behind_a_page_is_not_shown_as_a_traceback(populated, monkeypatch, caplog):
    def broken(runs_dir=None):
        raise RuntimeError("a bug in listing runs")

    monkeypatch.setattr(tlcore.runs.history, "list_runs", broken)
    for page in ("pages/evaluate.py", "pages/predict.py", "pages/export.py"):
        app = _run(page)

        assert not app.exception, page
        assert "Something went wrong" in app.error[0].value, page
    caplog.clear()


@pytest.mark.parametrize("page", ["pages/train.py", "pages/evaluate.py", "pages/predict.py", "pages/export.py", "app.py"])
def test_a_huge_run_name_in_the_address_is_no_such_training(page, populated):
    app = _run(page, run="x" * 5000)

    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    if page == "pages/train.py":
        assert "no training called" in app.warning[0].value
        assert len(app.warning[0].value) < 300


@pytest.mark.parametrize("typed, words", [("a" * 5000, "is not a usable path"), ("pets\x00/cats", "NUL")])
def test_a_typed_path_no_folder_can_have_is_a_clear_error(typed, words, dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(dataset))
    app = _run("pages/data.py")

    app.text_input(key="data_server_path").set_value(typed).run()
    app.button(key="data_use_server_path").click().run()

    assert not app.exception
    assert words in app.error[0].value and "Something went wrong" not in app.error[0].value
    assert len(app.error[0].value) < 400
    assert "dataset_path" not in app.session_state or app.session_state["dataset_path"] is None


def test_a_picture_too_thin_for_a_thumbnail_is_left_out(home, dataset):
    Image.new("RGB", (60000, 1), "red").save(dataset / "star" / "a_sliver.png")
    Image.new("RGB", (1, 60000), "red").save(dataset / "star" / "b_sliver.png")
    _remember_dataset(home, dataset)

    app = _run("pages/data.py")

    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert "Ready: 4 classes" in _texts(app)
    assert charts.thumbnail(str(dataset / "star" / "a_sliver.png")) is None
    assert charts.thumbnail(str(dataset / "star" / "star_000.jpg")) is not None


def test_an_unknown_remembered_block_falls_back_to_the_new_layer_only(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "app_state.json").write_text(json.dumps(
        {"model_choice": {"backbone": "mobilenetv2_035", "freeze": "block_that_is_not_there"}}))

    app = _run("pages/model.py")

    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert "block_that_is_not_there" in app.info[0].value
    assert app.radio(key="model_freeze_preset").value == "all"
    assert app.session_state["model_choice"]["freeze"] == "all"


def test_remembered_blocks_come_back_as_they_were(home):
    blocks = [block["name"] for block in tlcore.block_table("mobilenetv2_035")]
    freeze = f"{blocks[1]},{blocks[3]}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "app_state.json").write_text(json.dumps({"model_choice": {"backbone": "mobilenetv2_035", "freeze": freeze}}))

    app = _run("pages/model.py")

    assert not app.exception
    assert app.radio(key="model_freeze_preset").value == "custom"
    assert app.session_state["model_choice"]["freeze"] == freeze


# ----------------------------------------------------------------- what pages may import


def _imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("path", sorted([*(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py"), REPO / "app.py"]),
                         ids=lambda path: str(path.relative_to(REPO)))
def test_pages_and_ui_use_only_tlcores_public_names(path):
    inside = sorted(name for name in _imported_modules(path) if name.startswith("tlcore."))

    assert not inside, f"{path.name} imports {inside}; use the public names `tlcore.X` (tlcore/__init__.py)"


def test_pages_holds_only_pages():
    for path in (REPO / "pages").glob("*.py"):
        assert "st.title(" in path.read_text(encoding="utf-8"), f"{path.name} is not a page; helpers belong in ui/"


def test_a_large_first_audit_says_how_far_it_is_and_the_next_page_finds_it_kept(home, dataset, monkeypatch):
    import tlcore.data.audit

    real = tlcore.data.audit.audit_dataset
    calls, shown = [], []

    def audit_of_many(*args, progress=None, **kwargs):  # the real audit, as if it checked 1,000 pictures
        calls.append(args[0])
        progress(250, 1000)
        progress(1000, 1000)
        return real(*args, progress=progress, **kwargs)

    class Bar:
        def progress(self, value, text):
            shown.append((value, text))

        def empty(self):
            shown.append("emptied")

    monkeypatch.setattr(tlcore.data.audit, "audit_dataset", audit_of_many)
    monkeypatch.setattr(audit_cache.st, "empty", Bar)
    _remember_dataset(home, dataset)

    app = _run("pages/data.py")

    assert not app.exception, app.exception
    assert shown[0] == (0.25, shown[0][1]) and "Checking every picture: 250 of 1,000, about" in shown[0][1]
    assert shown[1] == (1.0, "Checking every picture: 1,000 of 1,000") and shown[-1] == "emptied"
    _run("pages/train.py")
    assert calls == [str(dataset)], "the Train page used the audit the Data page made"
