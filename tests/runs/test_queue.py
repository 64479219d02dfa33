"""The fair queue: runs wait in order, one each, can be taken out, and start as slots free up, even after a restart.

The first tests hold the machine's training slot in this process, so that
nothing they put in line starts; the last ones train tiny real runs in
`tlcore worker` processes, started by the queue itself.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO_ROOT, make_tiny_config, wait_for

import tlcore
from tlcore.errors import InputError
from tlcore.runs import dispatch as run_dispatch
from tlcore.runs import locks as run_locks
from tlcore.runs import queue as run_queue
from tlcore.runs import record as run_record

ENDED = ("completed", "failed", "stopped", "interrupted")


@pytest.fixture
def machine_busy(tmp_path):
    """Another run holds the training slot (this process, as a run trained from the command line would)."""
    busy_run = tmp_path / "busy-run"
    busy_run.mkdir()
    run_record.write_status(busy_run, "running", "training", eta_s=50)
    slot = run_locks.training_slot_lock()
    assert slot.try_acquire()
    slot.write_owner(str(busy_run))
    yield busy_run
    slot.release()


def put_in_line(user, data, **options):
    with tlcore.as_user(user):
        return tlcore.queue_training(make_tiny_config(data), **options)


def test_runs_wait_in_the_order_they_came_one_each(machine_busy, tiny_dataset):
    runs = [put_in_line(name, tiny_dataset, estimated_s=30) for name in ("ada", "bo", "cy")]

    assert [run_record.read_status(run)["state"] for run in runs] == ["waiting"] * 3
    places = [tlcore.queue_place(run) for run in runs]
    assert [place.position for place in places] == [1, 2, 3]
    # ada waits for the busy run's 50 s; bo also for ada's 30 s (and its start-up); cy for bo's too.
    assert [round(place.wait_s) for place in places] == [50, 83, 116]
    assert places[1].describe() == "2nd in line; starts in about 1 min 25 s."
    assert places[2].describe() == "3rd in line; starts in about 1 min 55 s."
    with pytest.raises(InputError, match="already have a training waiting in line"):
        put_in_line("ada", tiny_dataset)
    with tlcore.as_user("ada"):
        assert len(tlcore.list_runs()) == 1, "a refused run leaves no folder"
    put_in_line(None, tiny_dataset)  # the one person of personal mode waits the same way
    with pytest.raises(InputError, match="already have a training waiting"):
        put_in_line(None, tiny_dataset)


def test_a_waiting_run_stays_waiting_however_long_it_waits(machine_busy, tiny_dataset):
    run = put_in_line("ada", tiny_dataset)
    status = run_record.written_status(run)
    run_record.write_status(run, "waiting", status["message"], queued_at=time.time() - 3600)

    assert run_record.read_status(run)["state"] == "waiting", "not 'interrupted' after the starting grace"
    run_queue.remove(run)  # a line that lost it (its file deleted by hand)
    assert run_record.read_status(run)["state"] == "interrupted"


def test_a_student_takes_only_their_own_run_out_of_the_line(machine_busy, tiny_dataset):
    ada, bo = put_in_line("ada", tiny_dataset), put_in_line("bo", tiny_dataset)

    with tlcore.as_user("bo"), pytest.raises(InputError, match="not waiting in line"):
        tlcore.cancel_queued(ada)
    with tlcore.as_user("ada"):
        tlcore.cancel_queued(ada)
    assert not ada.exists(), "a new run taken out leaves nothing behind"
    assert [entry.run_dir for entry in run_queue.entries()] == [bo.resolve()]
    assert tlcore.queue_place(bo).position == 1


def test_deleting_a_waiting_run_takes_it_out_of_the_line(machine_busy, tiny_dataset):
    run = put_in_line("ada", tiny_dataset)
    with tlcore.as_user("ada"):
        tlcore.delete_run(run)
    assert run_queue.entries() == []


def test_two_dispatchers_at_once_start_a_run_once(tiny_dataset, monkeypatch):
    started, sleepers = [], []

    def fake_worker(arguments, run_dir, owner):
        started.append(run_dir)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        sleepers.append(sleeper)
        return sleeper

    monkeypatch.setattr(run_dispatch, "subprocess_for", fake_worker)
    # The stand-in processes are killed and reaped by this test; a reaper thread of the app's would dispatch
    # again in the background when they die, into whichever test runs then.
    monkeypatch.setattr(run_dispatch, "_watch", lambda process: None)
    slot = run_locks.training_slot_lock()
    assert slot.try_acquire()  # nothing starts while the runs are put in line
    runs = [put_in_line(name, tiny_dataset) for name in ("ada", "bo", "cy")]
    slot.release()
    try:
        threads = [threading.Thread(target=run_dispatch.dispatch) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert started == [runs[0]], "one slot: the first in line, once"
        assert run_record.read_status(runs[0])["state"] == "queued"
        assert [run_record.read_status(run)["state"] for run in runs[1:]] == ["waiting", "waiting"]
        with tlcore.as_user("ada"):
            assert tlcore.run_in_line() == runs[0]
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_with_two_training_slots_two_runs_start(tiny_dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_TRAINING_SLOTS", "2")
    started, sleepers = [], []

    def fake_worker(arguments, run_dir, owner):
        started.append((run_dir, owner))
        sleepers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return sleepers[-1]

    monkeypatch.setattr(run_dispatch, "subprocess_for", fake_worker)
    # The stand-in processes are killed and reaped by this test; a reaper thread of the app's would dispatch
    # again in the background when they die, into whichever test runs then.
    monkeypatch.setattr(run_dispatch, "_watch", lambda process: None)
    try:
        runs = [put_in_line(name, tiny_dataset) for name in ("ada", "bo", "cy")]

        assert started == [(runs[0], "ada"), (runs[1], "bo")]
        assert tlcore.queue_place(runs[2]).position == 1
        monkeypatch.setenv("TLCORE_TRAINING_SLOTS", "lots")
        with pytest.raises(InputError, match="TLCORE_TRAINING_SLOTS='lots'"):
            run_locks.slot_count()
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


# ----------------------------------------------------------------- real runs, started by the queue

_STUDENT = """
import json, os, sys, time
import tlcore
from conftest import make_tiny_config
name, data, go = sys.argv[1:4]
open(go + "." + name, "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.002)
with tlcore.as_user(name):
    print(json.dumps(str(tlcore.queue_training(make_tiny_config(data, epochs=1), estimated_s=6))))
"""


def _environment() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))


def _students_start_at_once(names, data, root: pathlib.Path) -> list[pathlib.Path]:
    """Each student in their own process clicks Start at the same moment; returns their run folders."""
    go = root / "go"
    processes = {name: subprocess.Popen([sys.executable, "-c", _STUDENT, name, str(data), str(go)], cwd=REPO_ROOT,
                                        env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in names}
    wait_for(lambda: all((root / f"go.{name}").exists() for name in names), timeout=120, what="every student ready")
    go.touch()
    runs = []
    for process in processes.values():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        runs.append(pathlib.Path(json.loads(out.strip().splitlines()[-1])))
    return runs


def _watch_until_all_ended(runs, timeout_s: float) -> int:
    """Poll every run until all have ended; returns the most that were starting or training at one moment."""
    most = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [run_record.read_status(run)["state"] for run in runs]
        most = max(most, sum(state in ("queued", "running") for state in states))
        if all(state in ENDED for state in states):
            return most
        time.sleep(0.05)
    raise AssertionError(f"runs still not ended: {[run_record.read_status(run)['state'] for run in runs]}")


def _ended(pid: int) -> bool:
    return not run_locks._pid_alive(pid)


def _assert_ran_in_line_order(runs) -> None:
    statuses = [run_record.read_status(run) for run in runs]
    assert [status["state"] for status in statuses] == ["completed"] * len(runs), [
        (run.name, status["state"], status.get("message")) for run, status in zip(runs, statuses, strict=True)]
    by_arrival = sorted(runs, key=lambda run: run_record.read_status(run)["queued_at"])
    by_start = sorted(runs, key=lambda run: run_record.read_status(run)["started_at"])
    assert by_start == by_arrival, "first come, first trained"
    for earlier, later in zip(by_start, by_start[1:], strict=False):
        assert run_record.read_status(earlier)["ended_at"] <= run_record.read_status(later)["started_at"] + 0.5


def test_ten_students_start_at_once_one_trains_and_all_complete_in_order(shared_tiny_dataset, tmp_path):
    names = [f"student-{number:02d}" for number in range(10)]

    runs = _students_start_at_once(names, shared_tiny_dataset, tmp_path)

    states = [run_record.read_status(run)["state"] for run in runs]
    assert states.count("waiting") >= 8 and set(states) <= {"waiting", "queued", "running"}, states
    assert {run.parent.parent.name for run in runs} == set(names), "each run in its student's own space"
    most = _watch_until_all_ended(runs, timeout_s=400)
    assert most == 1, "one training at a time"
    _assert_ran_in_line_order(runs)
    wait_for(lambda: run_queue.entries() == [], timeout=30, what="the line to empty")
    pids = [int((run / "worker.pid").read_text()) for run in runs]
    wait_for(lambda: all(_ended(pid) for pid in pids), timeout=30, what="every training process to end")


_SERVER_PUTS_IN_LINE = """
import json, sys
import tlcore
from conftest import make_tiny_config
data = sys.argv[1]
runs = []
for name in sys.argv[2:]:
    with tlcore.as_user(name):
        runs.append(str(tlcore.queue_training(make_tiny_config(data, epochs=1))))
print(json.dumps(runs))
"""

_HOLD_THE_SLOT = """
import sys, time
from tlcore.runs import locks
slot = locks.training_slot_lock()
assert slot.try_acquire()
slot.write_owner(sys.argv[1])
print("holding", flush=True)
time.sleep(600)
"""


def test_runs_waiting_when_the_server_ended_start_in_order_after_a_restart(shared_tiny_dataset, tmp_path):
    blocker = subprocess.Popen([sys.executable, "-c", _HOLD_THE_SLOT, str(tmp_path / "cli-run")], cwd=REPO_ROOT,
                               env=_environment(), stdout=subprocess.PIPE, text=True)
    try:
        assert blocker.stdout.readline().strip() == "holding"
        server = subprocess.run([sys.executable, "-c", _SERVER_PUTS_IN_LINE, str(shared_tiny_dataset), "ada", "bo", "cy"],
                                cwd=REPO_ROOT, env=_environment(), capture_output=True, text=True, timeout=120)
        assert server.returncode == 0, server.stderr
        runs = [pathlib.Path(run) for run in json.loads(server.stdout.strip().splitlines()[-1])]
    finally:
        blocker.kill()
        blocker.wait()
    # The server is gone and so is the run that held the machine: nobody is left to start the line.
    time.sleep(1.0)
    assert [run_record.read_status(run)["state"] for run in runs] == ["waiting"] * 3

    restarted = subprocess.run([sys.executable, "-m", "tlcore", "queue", "--dispatch"], cwd=REPO_ROOT,
                               env=_environment(), capture_output=True, text=True, timeout=60)

    assert restarted.returncode == 0 and "started 1 run(s)" in restarted.stdout, restarted.stdout + restarted.stderr
    assert _watch_until_all_ended(runs, timeout_s=200) == 1
    _assert_ran_in_line_order(runs)
    wait_for(lambda: run_queue.entries() == [], timeout=30, what="the line to empty")
