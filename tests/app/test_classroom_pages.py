"""The pages in classroom mode, driven with AppTest: sign in first, your own space only, the line, the teacher's page.

Runs are small fake run folders written into a user's space; nothing trains.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import tlcore
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record
from ui import audit_cache, gate

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGES = ["app.py", "pages/data.py", "pages/model.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py",
         "pages/export.py", "pages/teacher.py"]
PASSWORD = "purple tiger jumps"
ADA_RUN = "20261122-120000-mobilenetv2_035-adas-secret-pets"
BO_RUN = "20261122-121500-mobilenetv2_035-bos-birds"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    monkeypatch.chdir(REPO)
    st.cache_data.clear()
    audit_cache.forget_audits()  # the base audits this server process keeps
    st.cache_resource.clear()
    return tmp_path / "home"


@pytest.fixture(scope="module")
def accounts_file(tmp_path_factory):
    """ada and bo (students; bo also with a school account) and mr-lee (a teacher), hashed once for the module."""
    import os

    folder = tmp_path_factory.mktemp("accounts")
    before = os.environ.get("TLCORE_HOME")
    os.environ["TLCORE_HOME"] = str(folder)
    try:
        tlcore.add_user("ada", PASSWORD)
        tlcore.add_user("bo", PASSWORD, email="bo@school.example")
        tlcore.add_user("mr-lee", PASSWORD, teacher=True)
    finally:
        os.environ["TLCORE_HOME"] = before
    return folder / "accounts.sqlite"


@pytest.fixture
def classroom(accounts_file, home):
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(accounts_file, home / "accounts.sqlite")


def has_button(app: AppTest, key: str) -> bool:
    return any(button.key == key for button in app.button)


def write_run(user: str, name: str, data: pathlib.Path, state: str = "completed") -> pathlib.Path:
    """A run folder in `user`'s space: finished with a (fake) model, or live."""
    with tlcore.as_user(user):
        run_dir = tlcore.tlcore_home() / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(tlcore.TrainConfig(data=str(data), epochs=3).to_json())
    (run_dir / "status.json").write_text(json.dumps({"state": state, "message": "training finished.", "epoch": 1,
                                                     "epochs": 3, "started_at": time.time() - 30, "ended_at": time.time()}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1, "loss": 1.0, "accuracy": 0.5,
                                                       "val_loss": 1.0, "val_accuracy": 0.75}) + "\n")
    (run_dir / "labels.json").write_text(json.dumps(["cats", "dogs"]))
    (run_dir / "model.keras").write_bytes(b"not a real model")
    (run_dir / "export").mkdir()
    (run_dir / "export" / "model.tflite").write_bytes(b"ada's export")
    return run_dir


def run(page: str, user: str | None = None, **query) -> AppTest:
    app = AppTest.from_file(str(REPO / page), default_timeout=60)
    if user is not None:
        app.session_state[gate.USER_KEY] = user
    app.query_params.update(query)
    return app.run()


def texts(app: AppTest) -> str:
    parts = [element.value for kind in ("title", "markdown", "caption", "info", "success", "warning", "error", "subheader")
             for element in getattr(app, kind)]
    for frame in app.dataframe:
        parts.append(frame.value.to_string())
    for box in app.selectbox:
        parts += [str(option) for option in box.options]
    return "\n".join(str(part) for part in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_asks_for_sign_in_first(classroom, page):
    app = run(page)

    assert not app.exception, app.exception
    assert [title.value for title in app.title] == ["Sign in"]
    assert app.text_input(key="signin_name") and app.text_input(key="signin_password")


def test_personal_mode_asks_nobody(tmp_path):
    app = run("app.py")

    assert not app.exception
    assert "Sign in" not in [title.value for title in app.title]


def sign_in(app: AppTest, name: str, password: str) -> AppTest:
    app.text_input(key="signin_name").input(name)
    app.text_input(key="signin_password").input(password)
    return app.button(key="signin_submit").click().run()


def test_a_student_signs_in_with_name_and_password(classroom):
    app = sign_in(run("app.py"), "Ada", PASSWORD)

    assert not app.exception, app.exception
    assert app.session_state[gate.USER_KEY] == "ada"
    assert "Teach a computer to recognise your pictures" in [title.value for title in app.title]
    assert "Signed in as **ada**" in texts(app)


def test_failed_sign_ins_are_limited_with_a_clear_message(classroom):
    app = run("app.py")
    for _ in range(5):
        app = sign_in(app, "ada", "not my password")
    assert "wait 30 s before the next" in app.error[0].value

    app = sign_in(app, "ada", PASSWORD)

    assert "Too many failed sign-ins" in app.error[0].value
    assert gate.USER_KEY not in app.session_state


def test_a_classmates_wrong_tries_from_another_computer_do_not_stop_ada(classroom, monkeypatch):
    """The limit on one name counts per computer (the browser's network address), not per browser session."""
    monkeypatch.setattr(gate, "client_address", lambda: "10.0.0.9")  # the classmate's computer
    classmate = run("app.py")
    for _ in range(5):
        classmate = sign_in(classmate, "ada", "not my password")
    assert "wait 30 s before the next" in classmate.error[0].value
    reloaded = sign_in(run("app.py"), "ada", "not my password either")  # a reload is a new browser session
    assert "Too many failed sign-ins for this name from this computer" in reloaded.error[0].value

    monkeypatch.setattr(gate, "client_address", lambda: "10.0.0.7")  # ada's own
    app = sign_in(run("app.py"), "ada", PASSWORD)

    assert not app.exception, app.exception
    assert app.session_state[gate.USER_KEY] == "ada"


def test_the_teacher_page_asked_for_before_sign_in_shows_the_sign_in_form(classroom):
    """/teacher opened first is one of the app's pages (hidden from the menu): its sign-in form, not Streamlit's
    "page not found" box over the start page's (the browser test signs in on it; AppTest keeps no widget state
    on a page it switched to)."""
    app = run("app.py")
    app.switch_page("pages/teacher.py").run()  # raised "Could not find a navigation page" when it was not one

    assert not app.exception, app.exception
    assert [title.value for title in app.title] == ["Sign in"]
    assert app.text_input(key="signin_name") and app.text_input(key="signin_password")
    app.session_state[gate.USER_KEY] = "mr-lee"  # as signing in on that form does
    assert app.run().title[0].value == "Teacher: the whole class"

    student = run("app.py").switch_page("pages/teacher.py")
    student.session_state[gate.USER_KEY] = "bo"
    student.run()
    assert "only a teacher" in student.error[0].value and not student.dataframe


def test_the_teacher_lets_a_student_whose_sign_in_waits_in_again(classroom, monkeypatch):
    monkeypatch.setattr(gate, "client_address", lambda: "10.0.0.9")
    classmate = run("app.py")
    for _ in range(5):
        classmate = sign_in(classmate, "ada", "not my password")
    assert "wait 30 s before the next" in classmate.error[0].value

    teacher = run("pages/teacher.py", "mr-lee")
    assert not teacher.exception, teacher.exception
    assert "ada" in teacher.dataframe[-1].value.to_string()  # the last table: who waits
    teacher.selectbox(key="teacher_unlock_pick").set_value("ada").run()
    teacher.button(key="teacher_unlock").click().run()

    assert "ada may sign in again now." in [success.value for success in teacher.success]
    assert "Nobody has to wait before signing in." in texts(teacher)
    app = sign_in(run("app.py"), "ada", PASSWORD)
    assert app.session_state[gate.USER_KEY] == "ada"


def test_a_school_account_signs_in_as_the_user_the_operator_listed(classroom):
    app = AppTest.from_file(str(REPO / "pages/data.py"), default_timeout=60)
    app.user = {"is_logged_in": True, "email": "Bo@School.example", "email_verified": True}
    app.run()

    assert not app.exception, app.exception
    assert app.title[0].value == "Data: your pictures"
    assert app.session_state[gate.USER_KEY] == "bo"

    stranger = AppTest.from_file(str(REPO / "pages/data.py"), default_timeout=60)
    stranger.user = {"is_logged_in": True, "email": "stranger@elsewhere.example"}
    stranger.run()
    assert "not on this class's list" in stranger.error[0].value
    assert stranger.title[0].value == "Sign in"


@pytest.fixture
def adas_things(classroom, tmp_path):
    """ada has a finished run with an export, and a run training now (holding the machine's slot); bo has nothing."""
    pets = tmp_path / "adas-secret-pets"
    finished = write_run("ada", ADA_RUN, pets)
    live = write_run("ada", ADA_RUN + "-2", pets, state="running")
    worker, slot = run_locks.FileLock(live / ".worker.lock"), run_locks.training_slot_lock()
    assert worker.try_acquire() and slot.try_acquire()
    slot.write_owner(str(live))
    (tlcore.user_home("ada") / "app_state.json").write_text(json.dumps({"dataset_path": str(pets), "last_run": ADA_RUN}))
    yield finished, live
    worker.release()
    slot.release()


@pytest.mark.parametrize("page", [page for page in PAGES if page != "pages/teacher.py"])
def test_bo_sees_nothing_of_adas_runs_data_or_exports(adas_things, page):
    app = run(page, "bo")

    assert not app.exception, app.exception
    shown = texts(app)
    assert "secret" not in shown and ADA_RUN not in shown and "ada" not in shown.replace("Signed in", "")
    assert not has_button(app, "train_stop")
    assert not app.get("download_button") or page != "pages/export.py"


def test_bo_cannot_reach_or_stop_adas_run_through_the_address(adas_things):
    finished, live = adas_things
    for name in (live.name, finished.name, f"../../ada/runs/{live.name}"):
        app = run("pages/train.py", "bo", run=name)

        assert not app.exception
        assert "There is no training called" in app.warning[0].value, "the same answer as for a run that never was"
        assert not has_button(app, "train_stop")
        assert app.query_params.get("run") is None
    assert not (live / "STOP").exists()
    assert run_record.read_status(live)["state"] == "running"
    for page in ("pages/evaluate.py", "pages/predict.py", "pages/export.py"):
        assert ADA_RUN not in texts(run(page, "bo", run=finished.name))


def test_ada_sees_and_can_stop_her_own_run(adas_things):
    _, live = adas_things
    app = run("pages/train.py", "ada")

    assert app.query_params["run"] == live.name
    app.button(key="train_stop").click().run()
    assert (live / "STOP").exists()


def test_the_teacher_sees_everyones_runs_and_can_stop_them(adas_things, tmp_path):
    _, live = adas_things
    write_run("bo", BO_RUN, tmp_path / "birds")

    student = run("pages/teacher.py", "bo")
    assert "only a teacher" in student.error[0].value and not student.dataframe

    app = run("pages/teacher.py", "mr-lee")
    assert not app.exception, app.exception
    shown = texts(app)
    assert ADA_RUN in shown and BO_RUN in shown and "Class board" in shown
    app.selectbox(key="teacher_stop_pick").set_value(next(o for o in app.selectbox(key="teacher_stop_pick").options
                                                          if live.name in o)).run()
    app.button(key="teacher_stop").click().run()
    assert (live / "STOP").exists()


def test_a_run_waiting_in_line_says_its_place_and_can_be_taken_out(adas_things, tmp_path):
    run_record.write_status(adas_things[1], "running", "training", eta_s=40)
    with tlcore.as_user("bo"):
        waiting = tlcore.queue_training(tlcore.TrainConfig(data=str(tmp_path / "birds")), estimated_s=20)

    app = run("pages/train.py", "bo")

    assert not app.exception, app.exception
    assert app.query_params["run"] == waiting.name
    assert "1st in line; starts in about 40 s." in texts(app)
    assert "adas" not in texts(app)
    app.button(key="train_cancel").click().run()
    assert not waiting.exists()
    assert "run" not in app.query_params
