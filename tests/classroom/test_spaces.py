"""Each user's space: their own runs, uploads, caches and choices; the operator's limits; the teacher's view."""

from __future__ import annotations

import json
import threading

import pytest

import tlcore
from tlcore import paths
from tlcore.errors import InputError, NotAllowedError, QuotaExceededError
from tlcore.runs import folder as run_folder

PASSWORD = "purple tiger jumps"


def fake_run(name: str, data: str, accuracy: float | None = 0.75, state: str = "completed"):
    """A finished run folder in the current user's space, as training leaves it (without a model)."""
    run_dir = paths.default_runs_dir() / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(tlcore.TrainConfig(data=data).to_json())
    (run_dir / "status.json").write_text(json.dumps({"state": state, "message": "", "started_at": 1.0, "ended_at": 2.0}))
    if accuracy is not None:
        (run_dir / "metrics.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1, "val_accuracy": accuracy}) + "\n")
        (run_dir / "model.keras").write_bytes(b"model")
        (run_dir / "model.json").write_text(json.dumps({"val_accuracy": accuracy}))
    return run_dir


def test_each_user_has_a_space_of_their_own_and_the_machine_keeps_the_rest():
    machine = tlcore.machine_home()
    with tlcore.as_user("ada"):
        assert tlcore.current_user() == "ada"
        assert paths.tlcore_home() == machine / "users" / "ada"
        assert paths.default_runs_dir() == machine / "users" / "ada" / "runs"
        assert paths.uploads_dir() == machine / "users" / "ada" / "uploads"
        assert paths.cache_dir() == machine / "users" / "ada" / "cache"
        assert paths.locks_dir() == machine / "locks", "the training slots are the machine's"
        assert paths.demo_dataset_dir() == machine / "demo" / "shapes", "one demo for the class"
        with tlcore.as_user(None):
            assert paths.tlcore_home() == machine
    assert tlcore.current_user() is None and paths.tlcore_home() == machine


def test_a_training_process_learns_its_user_from_its_environment(monkeypatch):
    monkeypatch.setenv("TLCORE_USER", "bo")
    assert paths.tlcore_home() == tlcore.machine_home() / "users" / "bo"
    with tlcore.as_user("ada"):
        assert tlcore.current_user() == "ada", "the app's own choice comes first"
    monkeypatch.setenv("TLCORE_USER", "../../etc")
    with pytest.raises(InputError, match="not a usable user name"):
        paths.tlcore_home()


def test_threads_each_work_in_their_own_space():
    seen, ready = {}, threading.Barrier(2)

    def work(name):
        with tlcore.as_user(name):
            ready.wait()
            seen[name] = paths.tlcore_home().name

    threads = [threading.Thread(target=work, args=(name,)) for name in ("ada", "bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"ada": "ada", "bo": "bo"}


def test_another_users_run_is_not_found_not_listed_and_not_named(tmp_path):
    with tlcore.as_user("ada"):
        run_dir = fake_run("20261122-120000-mobilenetv2_035-secret", str(tmp_path / "secret"))
        assert tlcore.find_run(run_dir.name) == run_dir
        assert [row["name"] for row in tlcore.list_runs()] == [run_dir.name]
    with tlcore.as_user("bo"):
        assert tlcore.find_run(run_dir.name) is None
        assert tlcore.list_runs() == []
        assert tlcore.find_run(f"../ada/runs/{run_dir.name}") is None
        assert tlcore.run_in_line() is None
    rows = tlcore.everyones_runs()
    assert [(row["user"], row["name"]) for row in rows] == [("ada", run_dir.name)]
    assert tlcore.everyones_runs("bo") == []


def test_the_upload_limit_counts_each_persons_own_uploads(monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_UPLOAD_MB", "0.01")  # about 10 KB each
    picture = b"x" * 4000
    with tlcore.as_user("ada"):
        tlcore.save_uploaded_files([("pets/cats/a.png", picture), ("pets/dogs/b.png", picture)])
        with pytest.raises(QuotaExceededError, match="each person may keep here") as caught:
            tlcore.save_uploaded_file("more.zip", picture)
        assert "TLCORE_MAX_UPLOAD_MB" in str(caught.value)
        assert tlcore.quota_usage()["upload_bytes"] == 2 * 4096, "as the disk counts: each file in whole blocks"
    with tlcore.as_user("bo"):
        assert tlcore.save_uploaded_file("mine.zip", picture).is_file(), "ada's uploads are not bo's"


def test_the_run_limit_refuses_a_new_run_and_says_how_to_free_a_place(monkeypatch, tmp_path):
    monkeypatch.setenv("TLCORE_MAX_RUNS", "1")
    with tlcore.as_user("ada"):
        fake_run("20261122-120000-mobilenetv2_035-one", str(tmp_path))
        with pytest.raises(QuotaExceededError, match="you keep 1 training, and each person may keep 1") as caught:
            tlcore.queue_training(tlcore.TrainConfig(data=str(tmp_path)))
        assert "Delete one" in str(caught.value)
        assert len(tlcore.list_runs()) == 1, "no folder is left for a refused run"
    monkeypatch.setenv("TLCORE_MAX_RUNS", "many")
    with pytest.raises(InputError, match="TLCORE_MAX_RUNS='many'"):
        tlcore.current_quotas()


def test_only_a_teacher_sees_the_class_and_the_board(tmp_path):
    tlcore.add_user("ada", PASSWORD)
    tlcore.add_user("bo", PASSWORD)
    tlcore.add_user("mr-lee", PASSWORD, teacher=True)
    demo = str(paths.demo_dataset_dir())
    with tlcore.as_user("ada"):
        fake_run("20261122-120000-mobilenetv2_035-shapes", demo, accuracy=0.8)
        fake_run("20261122-120500-mobilenetv2_035-shapes", demo, accuracy=0.9)
        fake_run("20261122-121000-mobilenetv2_035-other", str(tmp_path), accuracy=1.0)
    with tlcore.as_user("bo"):
        fake_run("20261122-120100-mobilenetv2_035-shapes", demo, accuracy=0.6)
        with pytest.raises(NotAllowedError, match="only a teacher"):
            tlcore.class_runs()
        with pytest.raises(NotAllowedError):
            tlcore.stop_student_run("ada", "20261122-120000-mobilenetv2_035-shapes")

    with tlcore.as_user("mr-lee"):
        assert {(row["user"], row["name"][:15]) for row in tlcore.class_runs()} == {
            ("ada", "20261122-120000"), ("ada", "20261122-120500"), ("ada", "20261122-121000"), ("bo", "20261122-120100")}
        board = tlcore.class_board()
        assert [(row["user"], row["best_val_accuracy"], row["runs"]) for row in board] == [("ada", 0.9, 2), ("bo", 0.6, 1)]
        with pytest.raises(InputError, match="no training called"):
            tlcore.delete_student_run("bo", "../ada/runs/20261122-120000-mobilenetv2_035-shapes")
        tlcore.delete_student_run("ada", "20261122-121000-mobilenetv2_035-other")
    with tlcore.as_user("ada"):
        assert len(tlcore.list_runs()) == 2
    assert not any(run_folder.find_run(name) for name in ("20261122-120000-mobilenetv2_035-shapes",)), "not in the machine's own runs"


def test_the_operators_command_line_sees_everyone_and_filters_by_user(tmp_path):
    from conftest import last_json_line, tlcore_cli

    with tlcore.as_user("ada"):
        ada = fake_run("20261122-120000-mobilenetv2_035-pets", str(tmp_path))
    with tlcore.as_user("bo"):
        bo = fake_run("20261122-130000-mobilenetv2_035-birds", str(tmp_path))

    everyone = tlcore_cli("runs")
    only_ada = last_json_line(tlcore_cli("runs", "--user", "ada", "--json"))
    queue = tlcore_cli("queue", "--json")

    assert everyone.returncode == 0, everyone.stderr
    lines = everyone.stdout.splitlines()
    assert lines[0].startswith("bo ") and str(bo) in lines[0] and lines[1].startswith("ada ") and str(ada) in lines[1]
    assert [(row["user"], row["name"]) for row in only_ada] == [("ada", ada.name)]
    assert last_json_line(queue) == []
    bad = tlcore_cli("runs", "--user", "../etc")
    assert bad.returncode == 2 and "not a usable user name" in bad.stderr
