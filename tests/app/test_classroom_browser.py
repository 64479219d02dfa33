"""A classroom in real browsers: two students and their teacher, each in their own Chromium context.

The server is `streamlit run app.py` with three accounts made by the command
line (`tlcore users add`, passwords on standard input). Student ann has a
finished run (with an export) and a run training now; its worker here is a
stand-in that holds the run's lock and the machine's training slot and stops
when the run's STOP file appears, as a real worker does, so the test needs no
TensorFlow. Student ben must never see any of ann's things, not even by
typing her run's name into the address; his own Start waits in line behind
ann's run. The teacher sees both and stops ann's run. Screenshots go to
`test-artifacts/classroom-*.png`.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
import test_browser_journey as journey
from conftest import REPO_ROOT, make_tiny_dataset, wait_for

pytestmark = journey.pytestmark
expect = journey.expect

PASSWORDS = {"ann": "ann's long password", "ben": "ben's long password", "teach": "the teacher's password"}
ANN_DONE = "20261122-090000-mobilenetv2_035-anns-private-pets"
ANN_LIVE = "20261122-091500-mobilenetv2_035-anns-private-pets"
STUDENT_MENU = ["Start", "Data", "Model", "Train", "Evaluate", "Predict", "Export"]

_STAND_IN_WORKER = """
import sys, time
from tlcore.runs import folder, locks, record
run_dir = sys.argv[1]
worker, slot = locks.FileLock(f"{run_dir}/{folder.WORKER_LOCK_FILE}"), locks.training_slot_lock()
assert worker.try_acquire() and slot.try_acquire()
slot.write_owner(run_dir)
record.write_status(run_dir, "running", "training", epoch=2, epochs=500, eta_s=900, started_at=time.time())
print("training", flush=True)
while not record.stop_requested(run_dir):
    time.sleep(0.1)
record.write_status(run_dir, "stopped", "stopped by request; the best model so far is kept.", ended_at=time.time())
"""


def _cli(home: pathlib.Path, *args, stdin: str = "") -> None:
    result = subprocess.run([sys.executable, "-m", "tlcore", *args], input=stdin, capture_output=True, text=True,
                            cwd=REPO_ROOT, env=dict(os.environ, TLCORE_HOME=str(home)), timeout=120)
    assert result.returncode == 0, result.stderr


def _anns_run(home: pathlib.Path, name: str, data: pathlib.Path, state: str) -> pathlib.Path:
    run_dir = home / "users" / "ann" / "runs" / name
    run_dir.mkdir(parents=True)
    config = {"data": str(data), "backbone": "mobilenetv2_035", "epochs": 3, "weights": "none", "image_size": 32}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "status.json").write_text(json.dumps({"state": state, "message": "training finished.",
                                                     "started_at": time.time() - 60, "ended_at": time.time()}))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(
        {"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.3 * epoch, "val_loss": 1 / epoch,
         "val_accuracy": 0.3 * epoch}) + "\n" for epoch in (1, 2)))
    (run_dir / "labels.json").write_text(json.dumps(["circles", "squares", "stripes"]))
    (run_dir / "model.keras").write_bytes(b"ann's model")
    (run_dir / "export").mkdir()
    (run_dir / "export" / "model.tflite").write_bytes(b"ann's export")
    return run_dir


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """The running app's address, its TLCORE_HOME, and ann's live run with its stand-in worker."""
    root = tmp_path_factory.mktemp("classroom")
    home = root / "tlcore-home"
    _cli(home, "users", "add", "ann", stdin=PASSWORDS["ann"] + "\n")
    _cli(home, "users", "add", "ben", stdin=PASSWORDS["ben"] + "\n")
    _cli(home, "users", "add", "teach", "--teacher", stdin=PASSWORDS["teach"] + "\n")
    pets = make_tiny_dataset(home / "users" / "ann" / "uploads" / "anns-private-pets")
    _anns_run(home, ANN_DONE, pets, "completed")
    live = _anns_run(home, ANN_LIVE, pets, "running")
    (home / "users" / "ann" / "app_state.json").write_text(json.dumps({"dataset_path": str(pets)}))
    worker = subprocess.Popen([sys.executable, "-c", _STAND_IN_WORKER, str(live)], cwd=REPO_ROOT, text=True,
                              stdout=subprocess.PIPE, env=dict(os.environ, TLCORE_HOME=str(home)))
    try:
        assert worker.stdout.readline().strip() == "training"
        with journey._serve(root, TLCORE_SPARE="0") as (url, served_home):
            assert served_home == home
            yield url, home, live
    finally:
        worker.kill()
        worker.wait()


@pytest.fixture(scope="module")
def browser(classroom):
    with journey._chromium() as browser:
        yield browser


def _sign_in(page, name: str, heading: str) -> None:
    """Fill in the sign-in form this page shows; the page asked for (`heading`) opens."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=60_000)
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0, "no menu before signing in"
    page.get_by_role("textbox", name="Your name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile(heading))).to_be_visible(timeout=60_000)


def _signed_in(browser, url: str, name: str):
    """A new browser context (its own cookies and session) signed in as `name`."""
    page = journey._new_page(browser)
    page.goto(url)
    _sign_in(page, name, "Teach a computer to recognise your pictures")
    return page


def _menu(page) -> list[str]:
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link").all_inner_texts()


def _main_text(page) -> str:
    page.wait_for_timeout(1500)  # let the page and its fragments finish drawing
    return page.locator('[data-testid="stMain"]').inner_text()


def test_students_see_only_their_own_and_the_teacher_sees_both(classroom, browser):
    url, home, live = classroom

    ann = _signed_in(browser, url, "ann")
    journey._open(ann, "Train", "Train:")
    expect(ann.get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=30_000)
    journey._shot(ann, "classroom-ann-train")

    ben = _signed_in(browser, url, "ben")
    assert _menu(ben) == STUDENT_MENU, "no Teacher page for a student"
    for label, heading in (("Data", "Data:"), ("Train", "Train:"), ("Evaluate", "Evaluate:"), ("Predict", "Predict:"),
                           ("Export", "Export:")):
        journey._open(ben, label, heading)
        shown = _main_text(ben)
        assert "ann" not in shown and "private" not in shown and "090000" not in shown, (label, shown[:2000])
        assert ben.get_by_role("button", name="Stop", exact=True).count() == 0
        assert ben.get_by_role("button", name=re.compile("^Download")).count() == 0
    journey._shot(ben, "classroom-ben-export")

    # A tampered address: ann's live run by its name, then by a path.
    for name in (live.name, f"../../ann/runs/{live.name}"):
        ben.goto(f"{url}/train?run={name}")  # a new page load is a new session: sign in again, on that page
        _sign_in(ben, "ben", "Train:")
        expect(ben.get_by_text(re.compile("There is no training called"))).to_be_visible(timeout=60_000)
        assert ben.get_by_role("button", name="Stop", exact=True).count() == 0
    journey._shot(ben, "classroom-ben-tampered")
    assert not (live / "STOP").exists()

    # ben's own training waits in line behind ann's.
    journey._open(ben, "Data", "Data:")
    ben.get_by_role("button", name="Use demo dataset").click()
    expect(ben.get_by_text("Ready: 4 classes")).to_be_visible(timeout=90_000)
    journey._open(ben, "Train", "Train:")
    ben.get_by_role("button", name="Start training").click()
    expect(ben.get_by_text(re.compile(r"1st in line; starts in about"))).to_be_visible(timeout=60_000)
    journey._shot(ben, "classroom-ben-waiting")

    teacher = _signed_in(browser, url, "teach")
    assert _menu(teacher) == STUDENT_MENU + ["Teacher"]
    journey._open(teacher, "Teacher", "Teacher:")
    expect(teacher.get_by_text("The line for the computer (1 waiting)")).to_be_visible(timeout=30_000)
    assert "Class board" in _main_text(teacher)
    journey._shot(teacher, "classroom-teacher")
    teacher.locator('[data-testid="stSelectbox"]').first.click()  # the runs one may stop: ann's and ben's
    options = teacher.get_by_role("option").all_inner_texts()
    assert any(option.startswith(f"ann · {live.name}") for option in options), options
    assert any(option.startswith("ben · ") and "waiting in line" in option for option in options), options
    teacher.get_by_role("option", name=re.compile(f"^ann · {live.name}")).click()

    ben.get_by_role("button", name="Take it out of the line").click()
    expect(ben.get_by_text(re.compile("1st in line"))).to_have_count(0, timeout=30_000)
    teacher.get_by_role("button", name="Stop it").click()
    expect(teacher.get_by_text(re.compile("stops after its current step"))).to_be_visible(timeout=30_000)
    wait_for(lambda: json.loads((live / "status.json").read_text())["state"] == "stopped", timeout=30,
             what="ann's run to stop")
    expect(ann.get_by_text(re.compile("Training stopped"))).to_be_visible(timeout=30_000)
    for page in (ann, ben, teacher):
        assert page.get_by_text(journey.APP_ERROR).count() == 0
        page.context.close()


def test_the_teacher_page_opened_before_signing_in_shows_the_sign_in_form(classroom, browser):
    """/teacher as the first address: the sign-in form, usable (no "Page not found" box over it), then that page."""
    url, _, _ = classroom
    page = journey._new_page(browser)
    page.goto(f"{url}/teacher")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)  # a box would come with the first page run
    assert page.get_by_role("dialog").count() == 0, page.get_by_role("dialog").all_inner_texts()
    _sign_in(page, "teach", "Teacher:")
    assert page.url.rstrip("/").endswith("/teacher")
    journey._shot(page, "classroom-teacher-first")

    student = journey._new_page(browser)
    student.goto(f"{url}/teacher")
    _sign_in(student, "ben", "Sign in|Teacher")
    expect(student.get_by_text(re.compile("only a teacher sees everyone's trainings"))).to_be_visible(timeout=30_000)
    assert _menu(student) == STUDENT_MENU, "the Teacher page stays out of a student's menu"
    for one in (page, student):
        assert one.get_by_text(journey.APP_ERROR).count() == 0
        one.context.close()
