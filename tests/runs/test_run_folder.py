"""Tests for tlcore.runs: the run folder's status, metrics log, liveness, listing and stop."""

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from tlcore.errors import InputError, RunBusyError
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import locks as run_locks
from tlcore.runs import record as run_record


@pytest.fixture
def run_dir(tmp_path):
    """An empty run folder with a config, as `new_run_dir` + training would leave it."""
    path = run_folder.new_run_dir(tmp_path / "runs", "mobilenetv2_035", "/data/my photos")
    run_folder.write_json_atomic(path / run_folder.CONFIG_FILE, {"backbone": "mobilenetv2_035", "data": "/data/my photos"})
    return path


def _leftovers(folder: pathlib.Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith((".tmp", ".partial"))]


# ----------------------------------------------------------------- run folders


def test_new_run_dirs_are_named_by_time_backbone_and_data_and_never_collide(tmp_path):
    first = run_folder.new_run_dir(tmp_path, "mobilenet_025", "/x/My Photos!.zip")
    second = run_folder.new_run_dir(tmp_path, "mobilenet_025", "/x/My Photos!.zip")

    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.endswith("-mobilenet_025-My-Photos")
    # Within one second the name gets a counter; across a second boundary the stamp differs.
    assert second.name == first.name + "-2" or second.name[:15] != first.name[:15]


def test_default_runs_dir_is_under_tlcore_home(isolated_homes):
    path = run_folder.new_run_dir(None, "mobilenet_025", "data")

    assert path.parent == isolated_homes / "tlcore" / "runs"


def test_require_run_dir_explains_what_a_run_folder_is(tmp_path):
    with pytest.raises(InputError, match="not a tlcore run folder.*tlcore runs"):
        run_folder.require_run_dir(tmp_path)


# ----------------------------------------------------------------- status


def test_status_life_cycle_keeps_earlier_fields(run_dir):
    run_record.write_status(run_dir, "running", "checking the images", pid=123, started_at=10.0)
    run_record.write_status(run_dir, "completed", "training finished.", ended_at=20.0)

    status = json.loads((run_dir / run_folder.STATUS_FILE).read_text())
    assert status["state"] == "completed"
    assert status["message"] == "training finished."
    assert status["pid"] == 123 and status["started_at"] == 10.0 and status["ended_at"] == 20.0
    assert isinstance(status["updated_at"], float)
    assert _leftovers(run_dir) == []


def test_status_writes_are_atomic_for_a_concurrent_reader(run_dir):
    # A reader polling while the writer rewrites must always see a whole file.
    stop = threading.Event()
    seen, torn = [], []

    def reader():
        while not stop.is_set():
            status = run_folder.read_json(run_dir / run_folder.STATUS_FILE, None)
            (seen if status is not None else torn).append(1)

    run_record.write_status(run_dir, "running", "start")
    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(150):
        run_record.write_status(run_dir, "running", "x" * (index * 50), batch=index)
    stop.set()
    thread.join()

    assert seen and not torn
    assert run_folder.read_json(run_dir / run_folder.STATUS_FILE)["batch"] == 149


def test_a_missing_status_is_unknown_and_an_unreadable_one_damaged(run_dir):
    assert run_record.read_status(run_dir)["state"] == "unknown"

    (run_dir / run_folder.STATUS_FILE).write_text('{"state": "runn')
    status = run_record.read_status(run_dir)
    assert status["state"] == "damaged" and status["message"].startswith("its status.json is not valid JSON")


@pytest.mark.parametrize("state", ["completed", "stopped", "failed"])
def test_final_states_are_reported_as_written(run_dir, state):
    run_record.write_status(run_dir, state, "done")

    assert run_record.read_status(run_dir)["state"] == state


def test_running_status_while_the_worker_holds_its_lock(run_dir):
    run_record.write_status(run_dir, "running", "training epoch 1 of 3")
    lock = run_locks.FileLock(run_dir / run_folder.WORKER_LOCK_FILE)
    assert lock.try_acquire()
    try:
        assert run_locks.worker_alive(run_dir)
        assert run_record.read_status(run_dir)["state"] == "running"
    finally:
        lock.release()


def test_running_status_without_a_live_worker_reads_as_interrupted(run_dir):
    run_record.write_status(run_dir, "running", "training epoch 1 of 3")

    status = run_record.read_status(run_dir)

    assert status["state"] == "interrupted"
    assert "killed or crashed" in status["message"]
    assert "best model" not in status["message"]
    # The file itself is not rewritten by a reader.
    assert run_folder.read_json(run_dir / run_folder.STATUS_FILE)["state"] == "running"


def test_interrupted_run_with_a_model_says_the_model_is_kept(run_dir):
    run_record.write_status(run_dir, "running", "training")
    (run_dir / run_folder.MODEL_FILE).write_bytes(b"model")

    assert "best model so far is kept" in run_record.read_status(run_dir)["message"]


def test_worker_killed_with_sigkill_releases_its_lock(run_dir):
    # The operating system drops the lock of a dead process, however it died.
    code = (
        "import pathlib, sys, time; from tlcore.runs import folder as run_folder, locks as run_locks; "
        "lock = run_locks.FileLock(pathlib.Path(sys.argv[1]) / run_folder.WORKER_LOCK_FILE); "
        "assert lock.try_acquire(); print('locked', flush=True); time.sleep(60)"
    )
    run_record.write_status(run_dir, "running", "training")
    child = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert run_record.read_status(run_dir)["state"] == "running"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    assert run_record.read_status(run_dir)["state"] == "interrupted"


def test_queued_run_is_alive_while_its_starting_process_is(run_dir):
    run_record.write_status(run_dir, "queued", "starting", queued_at=time.time())
    assert run_record.read_status(run_dir)["state"] == "queued"  # no pid yet, within the grace period

    (run_dir / run_folder.PID_FILE).write_text(str(os.getpid()))
    assert run_record.read_status(run_dir)["state"] == "queued"

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / run_folder.PID_FILE).write_text(finished.stdout.strip())
    assert run_record.read_status(run_dir)["state"] == "interrupted"


def test_queued_run_that_never_started_is_interrupted_after_the_grace_period(run_dir):
    run_record.write_status(run_dir, "queued", "starting", queued_at=time.time() - run_folder.QUEUED_GRACE_S - 1)

    assert run_record.read_status(run_dir)["state"] == "interrupted"


# ----------------------------------------------------------------- metrics


def test_metrics_are_appended_one_json_object_per_line(run_dir):
    run_record.append_metrics(run_dir, {"type": "progress", "epoch": 1, "batch": 1})
    run_record.append_metrics(run_dir, {"type": "epoch", "epoch": 1, "val_accuracy": 0.5, "name": "é"})

    lines = (run_dir / run_folder.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["progress", "epoch"]
    assert run_record.epoch_rows(run_dir) == [{"type": "epoch", "epoch": 1, "val_accuracy": 0.5, "name": "é"}]


def test_read_metrics_skips_a_torn_last_line_and_junk(run_dir):
    run_record.append_metrics(run_dir, {"type": "epoch", "epoch": 1})
    run_record.append_metrics(run_dir, {"type": "epoch", "epoch": 2})
    with open(run_dir / run_folder.METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write("[1, 2]\n\n")
        handle.write('{"type": "epoch", "epoch": 3, "val_acc')  # the writer died mid-line

    assert [row["epoch"] for row in run_record.read_metrics(run_dir)] == [1, 2]


def test_metrics_of_a_run_without_a_log_are_empty(run_dir):
    assert run_record.read_metrics(run_dir) == []
    assert run_record.epoch_rows(run_dir) == []


# ----------------------------------------------------------------- stop


def test_request_stop_writes_the_stop_file(run_dir):
    assert not run_record.stop_requested(run_dir)

    run_record.request_stop(run_dir)

    assert (run_dir / run_folder.STOP_FILE).is_file()
    assert run_record.stop_requested(run_dir)


def test_request_stop_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a tlcore run folder"):
        run_record.request_stop(tmp_path)
    assert not (tmp_path / run_folder.STOP_FILE).exists()


# ----------------------------------------------------------------- listing


def _finished_run(root, name, state, accuracies):
    path = root / name
    path.mkdir(parents=True)
    run_folder.write_json_atomic(path / run_folder.CONFIG_FILE, {"backbone": "mobilenet_025", "data": "/d"})
    run_record.write_status(path, state, "", started_at=100.0, ended_at=130.0)
    for epoch, accuracy in enumerate(accuracies, start=1):
        run_record.append_metrics(path, {"type": "epoch", "epoch": epoch, "val_accuracy": accuracy})
        run_record.append_metrics(path, {"type": "progress", "epoch": epoch})
    return path


def test_list_runs_newest_first_with_summaries(tmp_path):
    root = tmp_path / "runs"
    _finished_run(root, "20250101-100000-mobilenet_025-a", "completed", [0.5, 0.75, 0.7])
    _finished_run(root, "20250102-100000-mobilenet_025-b", "stopped", [0.4])
    (root / "not-a-run").mkdir()
    (root / "stray.txt").write_text("x")

    rows = run_history.list_runs(root)

    assert [pathlib.Path(row["run_dir"]).name for row in rows] == [
        "20250102-100000-mobilenet_025-b", "20250101-100000-mobilenet_025-a",
    ]
    older = rows[1]
    assert older["status"] == "completed"
    assert older["epochs_run"] == 3
    assert older["best_val_accuracy"] == 0.75
    assert older["duration_s"] == 30.0
    assert older["backbone"] == "mobilenet_025"
    assert older["has_model"] is False
    json.dumps(rows)


def test_list_runs_reports_dead_runs_as_interrupted(tmp_path):
    _finished_run(tmp_path, "20250101-100000-x-a", "running", [0.5])

    assert run_history.list_runs(tmp_path)[0]["status"] == "interrupted"


def test_list_runs_of_a_missing_folder_is_empty(tmp_path):
    assert run_history.list_runs(tmp_path / "nothing") == []
    assert run_history.list_runs() == []


def test_delete_run_refuses_while_training_and_deletes_afterwards(run_dir):
    lock = run_locks.FileLock(run_dir / run_folder.WORKER_LOCK_FILE)
    lock.try_acquire()
    try:
        with pytest.raises(InputError, match="still training"):
            run_history.delete_run(run_dir)
    finally:
        lock.release()

    run_history.delete_run(run_dir)
    assert not run_dir.exists()


# ----------------------------------------------------------------- the training slot


def test_only_one_run_holds_the_training_slot(run_dir):
    assert run_locks.current_training_run() is None
    run_history.ensure_slot_free()
    run_record.write_status(run_dir, "running", "training", eta_s=125)
    slot = run_locks.training_slot_lock()
    assert slot.try_acquire()
    slot.write_owner(str(run_dir))
    try:
        assert run_locks.current_training_run() == run_dir
        with pytest.raises(RunBusyError) as caught:
            run_history.ensure_slot_free()
        message = str(caught.value)
        assert run_dir.name in message
        assert "2 min 05 s" in message
        assert f"tlcore stop {run_dir}" in message
    finally:
        slot.release()
    assert run_locks.current_training_run() is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "unknown"), (0, "0 s"), (59.4, "59 s"), (61, "1 min 01 s"), (3600, "1 h 00 min"), (-5, "0 s")],
)
def test_format_duration(seconds, text):
    assert run_history.format_duration(seconds) == text
