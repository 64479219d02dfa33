"""Spare training processes: a run handed to one starts at once; a dead or silent one is passed over."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import pytest

from tlcore import runs, spare
from tlcore.training import start_training


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
    monkeypatch.setenv("TLCORE_SPARE", "0")  # a reaper finishing late starts nothing
    leftover = spare.current()
    if leftover is not None:
        leftover.end()
        leftover.process.wait(timeout=30)
    spare._spare = None


def finished(run_dir: pathlib.Path) -> bool:
    return runs.read_status(run_dir).get("state") in ("completed", "failed", "stopped")


def test_a_run_handed_to_a_ready_spare_starts_at_once_and_completes(spares_on, tiny_dataset, tiny_config, tmp_path):
    waiting = spare.ensure_spare()
    assert waiting is not None and spare.ensure_spare() is waiting, "one spare at a time"
    wait_for(lambda: waiting.ready, what="the spare to import TensorFlow")

    started = time.monotonic()
    run_dir = start_training(tiny_config(tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")
    handed_over_s = time.monotonic() - started

    assert int((run_dir / runs.PID_FILE).read_text()) == waiting.process.pid
    assert handed_over_s < spare.ACKNOWLEDGE_TIMEOUT_S, "the spare took the run without the app waiting it out"
    wait_for(lambda: finished(run_dir), what="the run to finish")
    assert runs.read_status(run_dir)["state"] == "completed"
    assert (run_dir / runs.MODEL_FILE).is_file()
    assert '"status": "completed"' in (run_dir / runs.LOG_FILE).read_text(), "the worker's output is in the run's log"
    # When that process has ended, the next spare starts, for the next run.
    wait_for(lambda: ended(waiting.process.pid), what="the spare to end after its run")
    following = wait_for(lambda: spare.current(), what="the next spare")
    assert following is not waiting and following.alive
    assert not waiting.directory.exists()


def test_a_dead_spare_is_passed_over_for_a_new_worker(spares_on, tiny_dataset, tiny_config, tmp_path):
    dead = spare.ensure_spare()
    dead.process.kill()
    dead.process.wait(timeout=30)

    run_dir = start_training(tiny_config(tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")

    worker = int((run_dir / runs.PID_FILE).read_text())
    assert worker != dead.process.pid
    wait_for(lambda: finished(run_dir), what="the run to finish")
    assert runs.read_status(run_dir)["state"] == "completed"
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
        [sys.executable, "-c", "from tlcore import spare; print(spare.ensure_spare().process.pid)"],
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
    monkeypatch.setattr(runs, "current_training_run", lambda: tmp_path)
    assert spare.ensure_spare() is None
