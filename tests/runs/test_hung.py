"""The line moves on by itself: a hung training (SIGSTOP) is ended and reads interrupted, Stop and delete work on
it, and the runs waiting while the server was down start when it starts, before anyone opens a page.

The training process is a stand-in: a real process that takes the training
slot and the run's worker lock exactly as a training does, then writes its
progress until the test stops it with SIGSTOP. The limit on silence is set
tiny (`TLCORE_HUNG_AFTER_S`) only once it is stopped, and the tests wait on
conditions, not for fixed times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, make_tiny_config, wait_for

import tlcore
from tlcore.errors import InputError
from tlcore.runs import dispatch as run_dispatch
from tlcore.runs import folder as run_folder
from tlcore.runs import hung
from tlcore.runs import locks as run_locks
from tlcore.runs import queue as run_queue
from tlcore.runs import record as run_record

_STAND_IN = """
import os, sys, time
from tlcore.runs import folder, locks, record
run_dir = sys.argv[1]
slot = locks.acquire_training_slot()
worker = locks.FileLock(os.path.join(run_dir, folder.WORKER_LOCK_FILE))
assert slot is not None and worker.try_acquire()
slot.write_owner(os.path.realpath(run_dir))
record.write_status(run_dir, "running", "training epoch 1 of 9", pid=os.getpid())
while True:
    record.append_metrics(run_dir, {"type": "progress", "time": time.time()})
    record.write_status(run_dir, "running", "training epoch 1 of 9")
    time.sleep(0.05)
"""


def start_training(data, runs_dir=None) -> tuple:
    """`(run_dir, process)`: a new run (in `runs_dir`, default the current user's) and its stand-in training process."""
    config = make_tiny_config(data)
    run_dir = run_folder.new_run_dir(runs_dir, config.backbone, config.data)
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    process = subprocess.Popen([sys.executable, "-c", _STAND_IN, str(run_dir)],
                               env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    wait_for(lambda: run_record.written_status(run_dir).get("pid") == process.pid and run_locks.worker_alive(run_dir),
             what="the training process to take its locks")
    return run_dir, process


@pytest.fixture
def training(tiny_dataset, tmp_path):
    """`(run_dir, process)`: a run whose (stand-in) training process holds the slot and writes progress."""
    run_dir, process = start_training(tiny_dataset, tmp_path / "runs")
    try:
        yield run_dir, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def hang(process, monkeypatch) -> None:
    """Stop the process (`kill -STOP`), and let a second of silence count as hung from now on."""
    os.kill(process.pid, signal.SIGSTOP)
    monkeypatch.setenv(hung.HUNG_AFTER_ENV_VAR, "0.5")


@pytest.fixture
def fake_workers(monkeypatch):
    """Runs the line starts get a sleeping stand-in process instead of a training; returns the runs started."""
    started, sleepers = [], []

    def fake_worker(arguments, run_dir, owner):
        started.append(run_dir)
        sleepers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return sleepers[-1]

    monkeypatch.setattr(run_dispatch, "subprocess_for", fake_worker)
    monkeypatch.setattr(run_dispatch, "_watch", lambda process: None)  # reaped here, not by a thread of the app's
    yield started
    for sleeper in sleepers:
        sleeper.kill()
        sleeper.wait()


def test_a_hung_training_is_ended_and_the_next_run_in_line_starts(training, fake_workers, tiny_dataset, monkeypatch):
    run_dir, process = training
    with tlcore.as_user("bo"):
        waiting = tlcore.queue_training(make_tiny_config(tiny_dataset))
    assert run_record.read_status(run_dir)["state"] == "running", "a run making progress is not hung"
    assert run_record.read_status(waiting)["state"] == "waiting"
    assert run_dispatch.dispatch() == []

    hang(process, monkeypatch)

    assert wait_for(run_dispatch.dispatch, what="the line to move on") == [waiting]
    assert process.wait(timeout=30) == -signal.SIGKILL
    status = run_record.read_status(run_dir)
    assert status["state"] == "interrupted"
    assert status["message"].startswith("interrupted (no progress for ")
    assert fake_workers == [waiting]
    assert run_record.read_status(waiting)["state"] == "queued"
    assert run_queue.entry_for(run_dir) is None
    assert run_locks.current_training_run() is None, "the hung process's slot went with it"


def test_a_hung_run_reads_interrupted_before_anyone_ends_it(training, monkeypatch):
    run_dir, process = training
    hang(process, monkeypatch)

    status = wait_for(lambda: (lambda s: s if s["state"] == "interrupted" else None)(run_record.read_status(run_dir)),
                      what="the run to read as hung")

    assert "no progress for" in status["message"]
    assert process.poll() is None, "reading a status ends nothing"


@pytest.mark.parametrize("action", ["stop", "delete"])
def test_stop_and_delete_work_on_a_hung_run(action, training, monkeypatch):
    run_dir, process = training
    hang(process, monkeypatch)
    wait_for(lambda: run_record.read_status(run_dir)["state"] == "interrupted", what="the run to read as hung")

    if action == "stop":
        tlcore.request_stop(run_dir)
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert run_record.written_status(run_dir)["state"] == "interrupted"
        assert not (run_dir / run_folder.STOP_FILE).exists()
    tlcore.delete_run(run_dir)

    assert not run_dir.exists()
    assert process.wait(timeout=30) == -signal.SIGKILL


def test_the_teachers_stop_ends_a_students_hung_run(tiny_dataset, monkeypatch):
    tlcore.add_user("ada", "purple tiger jumps")
    tlcore.add_user("mr-lee", "purple tiger jumps", teacher=True)
    with tlcore.as_user("ada"):
        run_dir, process = start_training(tiny_dataset)
    try:
        hang(process, monkeypatch)
        wait_for(lambda: run_record.read_status(run_dir)["state"] == "interrupted", what="the run to read as hung")
        with tlcore.as_user("mr-lee"):
            said = tlcore.stop_student_run("ada", run_dir.name)

        assert "stopped responding" in said
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert run_record.written_status(run_dir)["state"] == "interrupted"
    finally:
        process.kill()
        process.wait(timeout=30)


# ----------------------------------------------------------------- the decision alone


def aged(run_dir, seconds: float, **fields) -> dict:
    """A running status with only `fields` (and a metrics file), last written `seconds` ago."""
    (run_dir / run_folder.STATUS_FILE).unlink(missing_ok=True)
    run_record.write_status(run_dir, "running", "training", **fields)
    run_record.append_metrics(run_dir, {"type": "progress"})
    status = run_record.written_status(run_dir)
    status["updated_at"] -= seconds
    run_folder.write_json_atomic(run_dir / run_folder.STATUS_FILE, status)
    then = time.time() - seconds
    for name in (run_folder.STATUS_FILE, run_folder.METRICS_FILE):
        os.utime(run_dir / name, (then, then))
    return status


def test_silence_counts_as_hung_only_past_a_generous_limit(tmp_path, monkeypatch):
    assert hung.configured_limit_s() == hung.DEFAULT_HUNG_AFTER_S == 600
    assert not hung.is_hung(tmp_path, aged(tmp_path, 300))
    assert hung.is_hung(tmp_path, aged(tmp_path, 700))
    # Slow epochs (a long silent validation) earn a longer limit: three times the slowest.
    assert not hung.is_hung(tmp_path, aged(tmp_path, 700, slowest_epoch_s=400))
    assert hung.is_hung(tmp_path, aged(tmp_path, 1300, slowest_epoch_s=400))
    # Any write is progress: a fresh metrics row.
    status = aged(tmp_path, 700)
    run_record.append_metrics(tmp_path, {"type": "progress"})
    assert not hung.is_hung(tmp_path, status)
    # Only a running run can hang.
    assert not hung.is_hung(tmp_path, dict(aged(tmp_path, 700), state="completed"))

    monkeypatch.setenv(hung.HUNG_AFTER_ENV_VAR, "120")
    assert hung.is_hung(tmp_path, aged(tmp_path, 200))
    assert hung.hung_message(200, has_model=True).startswith("interrupted (no progress for 3 min)")
    monkeypatch.setenv(hung.HUNG_AFTER_ENV_VAR, "soon")
    with pytest.raises(InputError, match="TLCORE_HUNG_AFTER_S='soon' is not a number of seconds"):
        hung.configured_limit_s()


def test_a_silent_run_whose_process_is_gone_is_left_to_the_locks(tmp_path):
    """No process holds the worker lock: the run was killed, not hung, and nothing is ended."""
    aged(tmp_path, 7000, pid=os.getpid())

    assert run_record.end_hung_run(tmp_path) is False
    assert run_record.read_status(tmp_path)["state"] == "interrupted"
    assert "killed or crashed" in run_record.read_status(tmp_path)["message"]


# ----------------------------------------------------------------- the line keeps moving with no page open

_HOLD_THE_SLOT = """
import sys, time
from tlcore.runs import locks
slot = locks.training_slot_lock()
assert slot.try_acquire()
slot.write_owner(sys.argv[1])
print("holding", flush=True)
time.sleep(600)
"""


def test_the_line_keeper_starts_the_next_run_when_the_slot_holder_dies_unseen(fake_workers, tiny_dataset, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_SLOT, str(tmp_path / "cli-run")], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        assert holder.stdout.readline().strip() == "holding"
        with tlcore.as_user("ada"):
            waiting = tlcore.queue_training(make_tiny_config(tiny_dataset))
        keeper = run_dispatch.LineKeeper(interval_s=0.05).start()
        try:
            assert run_record.read_status(waiting)["state"] == "waiting"
            holder.kill()  # killed: it never says that its slot is free

            wait_for(lambda: fake_workers == [waiting], what="the keeper to start the next run")
        finally:
            keeper.stop()
    finally:
        holder.kill()
        holder.wait()
    assert run_record.read_status(waiting)["state"] == "queued"


def test_serve_starts_the_runs_that_waited_while_the_server_was_down(fake_workers, tiny_dataset, tmp_path, monkeypatch):
    from streamlit.web import cli as streamlit_cli

    from tlcore.cli.main import main

    slot = run_locks.training_slot_lock()
    assert slot.try_acquire()
    slot.write_owner(str(tmp_path / "cli-run"))
    with tlcore.as_user("ada"):
        waiting = tlcore.queue_training(make_tiny_config(tiny_dataset))
    slot.release()  # the training ended while no server ran: nobody started the next
    assert run_record.read_status(waiting)["state"] == "waiting"
    served, kept = [], []
    monkeypatch.setattr(streamlit_cli, "main", lambda args, standalone_mode: served.append((args, list(fake_workers))))
    monkeypatch.setattr(run_dispatch, "keep_line_moving", lambda: kept.append(True))

    assert main(["serve", "--", "--server.port", "8599"]) == 0

    assert served == [(["run", str(REPO_ROOT / "app.py"), "--server.port", "8599"], [waiting])], \
        "the waiting run started before the app"
    assert kept == [True], "and the line keeps moving while the app runs"
