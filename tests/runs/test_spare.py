"""Spare training processes: a run handed to one starts at once; a dead or silent one is passed over."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time

import pytest
from conftest import wait_for

from tlcore.runs import folder as run_folder
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record
from tlcore.runs import spare
from tlcore.training.launch import start_training


def ended(pid: int) -> bool:
    """The process is gone, or a zombie nobody has reaped yet (as under a container's init)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.fixture
def spares_on(monkeypatch):
    """Spares enabled for this test; any left over are ended afterwards."""
    monkeypatch.setenv("TLCORE_SPARE", "1")
    yield
    # End every spare, and wait for the reaper threads, which could start another one late, in the next test.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        leftover = spare.current()
        if leftover is not None:
            leftover.end()
            leftover.process.wait(timeout=30)
        if not any(thread.name.startswith("tlcore-") and thread.name.endswith("reaper") for thread in threading.enumerate()):
            break
        time.sleep(0.05)
    spare._spare = None


def finished(run_dir: pathlib.Path) -> bool:
    return run_record.read_status(run_dir).get("state") in ("completed", "failed", "stopped")


def test_a_run_handed_to_a_ready_spare_starts_at_once_and_completes(spares_on, tiny_dataset, tiny_config, tmp_path):
    waiting = spare.ensure_spare()
    assert waiting is not None and spare.ensure_spare() is waiting, "one spare at a time"
    wait_for(lambda: waiting.ready, what="the spare to import TensorFlow")

    started = time.monotonic()
    run_dir = start_training(tiny_config(tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")
    handed_over_s = time.monotonic() - started

    assert int((run_dir / run_folder.PID_FILE).read_text()) == waiting.process.pid
    assert handed_over_s < spare.ACKNOWLEDGE_TIMEOUT_S, "the spare took the run without the app waiting it out"
    wait_for(lambda: finished(run_dir), what="the run to finish")
    assert run_record.read_status(run_dir)["state"] == "completed"
    assert (run_dir / run_folder.MODEL_FILE).is_file()
    # When that process has ended, the next spare starts, for the next run.
    wait_for(lambda: ended(waiting.process.pid), what="the spare to end after its run")
    assert '"status": "completed"' in (run_dir / run_folder.LOG_FILE).read_text(), "the worker's output is in the run's log"
    following = wait_for(lambda: spare.current(), what="the next spare")
    assert following is not waiting and following.alive
    assert not waiting.directory.exists()


def test_a_dead_spare_is_passed_over_for_a_new_worker(spares_on, tiny_dataset, tiny_config, tmp_path):
    dead = spare.ensure_spare()
    dead.process.kill()
    dead.process.wait(timeout=30)

    run_dir = start_training(tiny_config(tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")

    worker = int((run_dir / run_folder.PID_FILE).read_text())
    assert worker != dead.process.pid
    wait_for(lambda: finished(run_dir), what="the run to finish")
    assert run_record.read_status(run_dir)["state"] == "completed"
    # A worker's end, too, readies a spare for the next run.
    wait_for(lambda: ended(worker), what="the worker to end")
    assert wait_for(lambda: spare.current(), what="the next spare").alive


def test_a_claim_a_spare_never_takes_is_withdrawn_and_the_spare_ended(spares_on, tmp_path, monkeypatch):
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    directory = tmp_path / "silent"
    directory.mkdir()
    monkeypatch.setattr(spare, "_spare", spare.Spare(silent, directory, spare._settings()))
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    assert spare.hand_over(run_dir) is None
    assert not (directory / spare.CLAIM_FILE).exists()
    assert (directory / spare.WITHDRAWN_FILE).exists()
    assert silent.wait(timeout=30) is not None


def test_a_spare_with_other_settings_is_not_used(spares_on, tmp_path, monkeypatch):
    started = spare.ensure_spare()
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # a worker started now would train differently

    assert spare.hand_over(tmp_path) is None
    started.process.wait(timeout=30)


def test_a_spare_ends_with_the_process_that_started_it(spares_on):
    starter = subprocess.run(
        [sys.executable, "-c", "from tlcore.runs import spare; print(spare.ensure_spare().process.pid)"],
        capture_output=True, text=True, timeout=60,
    )
    assert starter.returncode == 0, starter.stderr
    pid = int(starter.stdout.strip())
    wait_for(lambda: ended(pid), timeout=60, what="the orphaned spare to end")


def test_no_spare_when_spares_are_off(monkeypatch):
    monkeypatch.setenv("TLCORE_SPARE", "0")
    assert spare.ensure_spare() is None
    assert spare.current() is None


def test_no_spare_starts_while_a_run_trains(spares_on, monkeypatch, tmp_path):
    monkeypatch.setattr(run_locks, "current_training_run", lambda: tmp_path)
    assert spare.ensure_spare() is None


def trained_run(dataset, config_factory, tmp_path) -> pathlib.Path:
    from tlcore.training.run import train

    return pathlib.Path(train(config_factory(dataset, epochs=1), runs_dir=tmp_path / "runs").run_dir)


@pytest.mark.parametrize("with_spare", [False, True], ids=["fresh worker", "spare"])
def test_continuing_a_run_from_the_app_trains_more_epochs(with_spare, spares_on, tiny_dataset, tiny_config, tmp_path,
                                                          monkeypatch):
    run_dir = trained_run(tiny_dataset, tiny_config, tmp_path)
    if with_spare:
        wait_for(lambda: spare.ensure_spare().ready, what="the spare to import TensorFlow")
    else:
        monkeypatch.setenv("TLCORE_SPARE", "0")

    start_training(None, resume_run=run_dir, resume_epochs=2)

    wait_for(lambda: finished(run_dir), what="the resumed run to finish")
    assert run_record.read_status(run_dir)["state"] == "completed", (run_dir / run_folder.LOG_FILE).read_text()[-2000:]
    assert [row["epoch"] for row in run_record.epoch_rows(run_dir)] == [1, 2, 3]


def test_a_run_whose_spare_ended_before_training_is_marked_failed_with_its_output(spares_on, tmp_path, monkeypatch):
    directory = tmp_path / "spare"
    directory.mkdir()
    script = (
        "import os, sys, time\n"
        f"claim, claimed = {str(directory / spare.CLAIM_FILE)!r}, {str(directory / spare.CLAIMED_FILE)!r}\n"
        "while not os.path.exists(claim): time.sleep(0.01)\n"
        "os.rename(claim, claimed)\n"
        "print('ImportError: the TensorFlow import failed', flush=True)\n"
        "time.sleep(0.5)\n"  # as a real spare takes a moment to fail
        "sys.exit(1)\n"
    )
    with open(directory / spare.LOG_FILE, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT)
    failing = spare.Spare(process, directory, spare._settings())
    threading.Thread(target=spare._reap, args=(failing,), daemon=True).start()
    monkeypatch.setattr(spare, "_spare", failing)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_record.write_status(run_dir, "queued", "starting the training process")

    assert spare.hand_over(run_dir) == process.pid

    wait_for(lambda: run_record.read_status(run_dir).get("state") == "failed", what="the run to be marked failed")
    assert "ended before training began" in run_record.read_status(run_dir)["message"]
    assert "the TensorFlow import failed" in (run_dir / run_folder.LOG_FILE).read_text()


def test_a_spare_trains_a_students_queued_run_in_that_students_space(spares_on, tiny_dataset, tiny_config):
    from tlcore import paths
    from tlcore.training.launch import queue_training

    waiting = spare.ensure_spare()
    wait_for(lambda: waiting.ready, what="the spare to import TensorFlow")

    with paths.as_user("ada"):
        run_dir = queue_training(tiny_config(tiny_dataset, epochs=1))

    assert run_dir.parent == paths.user_home("ada") / "runs"
    assert int((run_dir / run_folder.PID_FILE).read_text()) == waiting.process.pid, "the server's spare took it"
    wait_for(lambda: finished(run_dir), what="the run to finish")
    assert run_record.read_status(run_dir)["state"] == "completed", (run_dir / run_folder.LOG_FILE).read_text()[-2000:]
    assert any((paths.user_home("ada") / "cache").rglob("*")), "its kept features are ada's"
    assert not (paths.machine_home() / "cache").exists()
