"""One damaged file never takes a page down: not its owner's pages, not the teacher's, not anyone's.

Each case is an attack that broke pages: bytes that are not UTF-8 appended to a
student's metrics.jsonl, config.json = [] or with settings of the wrong type, an
evaluation.json that is not a report, a queue.sqlite of garbage. Driven with
AppTest on fake run folders; nothing trains.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import tlcore
from tlcore.results.evaluation import classification_report
from ui import audit_cache, gate, messages

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGES = ["app.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py", "pages/export.py"]
GOOD_RUN = "20261207-100000-mobilenetv2_035-good"
BAD_RUN = "20261207-110000-mobilenetv2_035-bad"
PASSWORD = "purple tiger jumps"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch, caplog):
    """A fresh TLCORE_HOME; a page that hits a bug (a short apology on the page, a traceback in the log) fails the test."""
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    monkeypatch.chdir(REPO)
    st.cache_data.clear()
    audit_cache.forget_audits()
    st.cache_resource.clear()
    caplog.set_level(logging.ERROR, logger=messages.LOGGER.name)
    yield tmp_path / "home"
    bugs = [record for record in caplog.get_records("call") if record.name == messages.LOGGER.name]
    assert not bugs, [record.getMessage() + "\n" + (record.exc_text or "") for record in bugs]


def write_run(user: str | None, name: str, data: pathlib.Path) -> pathlib.Path:
    """A finished run folder (three epochs, an evaluation, a fake model) in `user`'s space."""
    with tlcore.as_user(user):
        run_dir = tlcore.tlcore_home() / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(tlcore.TrainConfig(data=str(data), epochs=3).to_json())
    (run_dir / "status.json").write_text(json.dumps({"state": "completed", "message": "training finished.",
                                                     "started_at": time.time() - 30, "ended_at": time.time()}))
    rows = [{"type": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.3 * epoch, "val_loss": 1.1 / epoch,
             "val_accuracy": 0.25 * epoch} for epoch in (1, 2, 3)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (run_dir / "labels.json").write_text(json.dumps(["cats", "dogs"]))
    report = classification_report([0, 1], [[0.9, 0.1], [0.3, 0.7]], ["cats", "dogs"], ["a.png", "b.png"])
    (run_dir / "evaluation.json").write_text(json.dumps({"val": report}))
    (run_dir / "split.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    (run_dir / "model.keras").write_bytes(b"not a real model")
    return run_dir


@pytest.fixture
def two_runs(home, tmp_path):
    """A good run and a bad one (to be damaged by the test), the bad one the last used."""
    good, bad = write_run(None, GOOD_RUN, tmp_path / "pets"), write_run(None, BAD_RUN, tmp_path / "pets")
    (home / "app_state.json").write_text(json.dumps({"last_run": BAD_RUN}))
    return good, bad


def run(page: str, user: str | None = None, **query) -> AppTest:
    app = AppTest.from_file(str(REPO / page), default_timeout=60)
    if user is not None:
        app.session_state[gate.USER_KEY] = user
    app.query_params.update(query)
    return app.run()


def texts(app: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "subheader")
             for element in getattr(app, kind)]
    parts += [frame.value.to_string() for frame in app.dataframe]
    return "\n".join(str(part) for part in parts)


def assert_page_works(app: AppTest) -> None:
    assert not app.exception, app.exception
    assert not [e.value for e in app.error if "Something went wrong" in e.value]


# ----------------------------------------------------------------- a bad metrics line


def test_a_line_of_bytes_in_metrics_breaks_no_page(two_runs):
    _, bad = two_runs
    with open(bad / "metrics.jsonl", "ab") as handle:
        handle.write(b"\xff\xfe{not json}\n")

    for page in PAGES:
        app = run(page, run=BAD_RUN)
        assert_page_works(app)
        assert not app.error, (page, [e.value for e in app.error])
    table = run("pages/export.py").dataframe[0].value.set_index("training")
    assert table.loc[BAD_RUN, "best validation accuracy"] == 75.0, "the run still shows its best epoch"
    assert table.loc[BAD_RUN, "status"] == "finished"


@pytest.fixture
def classroom(home):
    tlcore.add_user("ada", PASSWORD)
    tlcore.add_user("mr-lee", PASSWORD, teacher=True)


def test_a_students_bad_metrics_line_breaks_neither_her_pages_nor_the_teachers(classroom, tmp_path):
    write_run("ada", GOOD_RUN, tmp_path / "pets")
    bad = write_run("ada", BAD_RUN, tmp_path / "pets")
    with open(bad / "metrics.jsonl", "ab") as handle:
        handle.write(b"\x80\x81\x82\n")
    (bad / "config.json").write_text("[]")  # and a second run of hers unreadable altogether

    for page in PAGES:
        assert_page_works(run(page, "ada"))
    teacher = run("pages/teacher.py", "mr-lee")
    assert_page_works(teacher)
    shown = texts(teacher)
    assert GOOD_RUN in shown and BAD_RUN in shown and "damaged (cannot be read): its config.json holds a list" in shown


# ----------------------------------------------------------------- config.json


def test_a_config_that_is_a_list_is_one_line_on_the_pages_that_pick_a_run(two_runs):
    _, bad = two_runs
    (bad / "config.json").write_text("[]")

    for page in ("pages/evaluate.py", "pages/predict.py", "pages/export.py"):
        app = run(page)
        assert_page_works(app)
        assert not app.error
        assert f"Not offered: training {BAD_RUN} is damaged (its config.json holds a list" in texts(app)
        assert app.selectbox[0].value == GOOD_RUN
    train = run("pages/train.py", run=BAD_RUN)
    assert_page_works(train)
    assert any(f"Training {BAD_RUN} is damaged: its config.json holds a list" in w.value for w in train.warning)
    assert any(box.label == "Settings for a new training" for box in train.expander), "a new one can still start"
    history = run("pages/export.py")
    assert "damaged (cannot be read)" in history.dataframe[0].value.to_string()
    history.selectbox(key="export_delete_pick").set_value(BAD_RUN)
    history.checkbox(key="export_delete_confirm").check().run()
    history.button(key="export_delete").click().run()
    assert_page_works(history)
    assert not bad.exists(), "a damaged training can still be deleted"


@pytest.mark.parametrize("change", [{"epochs": "many"}, {"image_size": [1]}])
def test_a_config_with_settings_of_the_wrong_type_is_a_clear_line_on_evaluate_and_export(two_runs, change):
    _, bad = two_runs
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(config, **change)))

    export = run("pages/export.py", run=BAD_RUN)
    assert_page_works(export)
    assert any("is damaged: its config.json has settings tlcore cannot use" in w.value for w in export.warning)
    assert export.dataframe, "the list of every training still shows below"
    evaluate = run("pages/evaluate.py", run=BAD_RUN)
    assert_page_works(evaluate)
    assert any("config.json has settings tlcore cannot use" in e.value for e in evaluate.error)


# ----------------------------------------------------------------- evaluation.json


@pytest.mark.parametrize("content", ['{"val": [1, 2', '{"val": {"accuracy": "x"}}'])
def test_a_malformed_evaluation_is_a_warning_with_a_way_to_measure_again(two_runs, content):
    _, bad = two_runs
    (bad / "evaluation.json").write_text(content)

    app = run("pages/evaluate.py", run=BAD_RUN)

    assert_page_works(app)
    assert any("its evaluation.json" in w.value and "Measure the model again" in w.value for w in app.warning)
    assert any(button.key == "evaluate_measure_again" for button in app.button)
    good = run("pages/evaluate.py", run=GOOD_RUN)
    assert_page_works(good)
    assert "It got **100%** of 2 pictures right" in texts(good)


# ----------------------------------------------------------------- queue.sqlite


def test_a_garbage_line_file_is_rebuilt_and_every_page_works(two_runs, home):
    (home / "queue.sqlite").write_bytes(b"\x00garbage, not a database\xff" * 40)

    for page in PAGES:
        assert_page_works(run(page))
    assert len(list(home.glob("queue.sqlite.damaged-*"))) == 1
    assert tlcore.run_in_line() is None
