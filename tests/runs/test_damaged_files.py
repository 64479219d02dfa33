"""A damaged file in one run folder, or a damaged line file, never takes down the listings, the other runs or the line.

Each case is one of the attacks that broke pages: bytes that are not UTF-8
appended to metrics.jsonl, config.json = [] or with settings of the wrong type,
an evaluation.json that is not a report, a status.json that is not an object,
a queue.sqlite of garbage or cut short. Run folders are written by hand; nothing trains.
"""

from __future__ import annotations

import json
import logging
import pathlib
import sqlite3
import time

import pytest

import tlcore
from tlcore.cli import main as cli
from tlcore.errors import DamagedRunError
from tlcore.results.evaluation import classification_report, evaluate_run, read_evaluation
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import queue as run_queue
from tlcore.runs import record as run_record
from tlcore.training.config import TrainConfig


def write_run(runs: pathlib.Path, name: str, state: str = "completed", **status) -> pathlib.Path:
    """A finished run folder (three epochs, an evaluation) as training leaves it, without a model."""
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(TrainConfig(data=str(runs / "pictures"), epochs=3).to_json())
    (run_dir / "status.json").write_text(json.dumps({"state": state, "message": "", "started_at": 100.0,
                                                     "ended_at": 130.0, **status}))
    rows = [{"type": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "val_loss": 1.1 / epoch,
             "val_accuracy": 0.2 * epoch} for epoch in (1, 2, 3)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = classification_report([0, 1], [[0.9, 0.1], [0.3, 0.7]], ["cats", "dogs"], ["a.png", "b.png"])
    (run_dir / "evaluation.json").write_text(json.dumps({"val": report}))
    return run_dir


@pytest.fixture
def runs(tmp_path) -> pathlib.Path:
    return tlcore.tlcore_home() / "runs"


@pytest.fixture
def two_runs(runs):
    """A good run and one that the test damages."""
    return write_run(runs, "20261207-100000-good"), write_run(runs, "20261207-110000-bad")


def summary_of(name: str) -> dict:
    return next(row for row in tlcore.list_runs() if row["name"] == name)


# ----------------------------------------------------------------- metrics.jsonl


def test_a_line_of_bytes_that_are_not_utf8_is_skipped_and_the_rest_of_the_run_reads(two_runs):
    _, bad = two_runs
    with open(bad / "metrics.jsonl", "ab") as handle:
        handle.write(b"\xff\xfe{not json\n")
        handle.write(json.dumps({"type": "epoch", "epoch": 4, "val_accuracy": 0.9}).encode() + b"\n")

    rows = run_record.read_metrics(bad)

    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert summary_of(bad.name)["best_val_accuracy"] == 0.9
    assert summary_of(bad.name)["damaged"] is None


def test_an_epoch_row_whose_scores_are_not_numbers_is_skipped(two_runs):
    _, bad = two_runs
    with open(bad / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "epoch", "epoch": 4, "val_accuracy": "ninety"}) + "\n")
        handle.write(json.dumps({"type": "epoch", "epoch": "five", "val_accuracy": 0.5}) + "\n")
        handle.write("[1, 2]\n")

    assert [row["epoch"] for row in run_record.epoch_rows(bad)] == [1, 2, 3]
    assert summary_of(bad.name)["best_val_accuracy"] == pytest.approx(0.6)


# ----------------------------------------------------------------- config.json and status.json


@pytest.mark.parametrize("content, reason", [
    ("[]", "its config.json holds a list"),
    ('{"data": 7, "backbone": "mobilenetv2_035"}', "its config.json gives data as 7"),
    ('{"data": ', "its config.json is not valid JSON"),
    (b"\xff\xfe", "its config.json is not text"),
])
def test_a_run_whose_config_cannot_be_read_is_listed_as_damaged_and_the_others_as_before(two_runs, content, reason):
    good, bad = two_runs
    (bad / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())

    rows = {row["name"]: row for row in tlcore.list_runs()}

    assert rows[bad.name]["status"] == "damaged" and rows[bad.name]["damaged"].startswith(reason)
    assert rows[bad.name]["has_model"] is False and rows[bad.name]["result_val_accuracy"] is None
    assert rows[good.name]["status"] == "completed" and rows[good.name]["damaged"] is None
    with pytest.raises(DamagedRunError, match=reason):
        TrainConfig.from_run(bad)


@pytest.mark.parametrize("change", [{"epochs": "many"}, {"image_size": [1]}, {"backbone": "nope"}, {"data": None}])
def test_a_config_with_settings_of_the_wrong_type_is_a_damaged_run_for_whoever_reads_it(two_runs, change):
    _, bad = two_runs
    config = json.loads((bad / "config.json").read_text())
    config.update(change)
    (bad / "config.json").write_text(json.dumps(config))

    with pytest.raises(DamagedRunError, match="config.json has settings tlcore cannot use") as caught:
        TrainConfig.from_run(bad)
    assert isinstance(caught.value, ValueError), "an input error, as the CLI and the pages expect"
    assert "Delete that training" in str(caught.value)


def test_a_status_that_is_not_an_object_reads_as_damaged_and_the_next_write_replaces_it(two_runs):
    good, bad = two_runs
    (bad / "status.json").write_text("[1]")

    assert run_record.read_status(bad) == {"state": "damaged", "message": "its status.json holds a list ([...]) "
                                                                          "where an object ({...}) was expected"}
    assert summary_of(bad.name)["status"] == "damaged"
    assert summary_of(good.name)["status"] == "completed"
    run_record.write_status(bad, "stopped", "stopped by hand")
    assert run_record.read_status(bad)["state"] == "stopped"


def test_the_class_listing_and_tlcore_runs_show_a_damaged_run_as_one_line(two_runs, capsys, monkeypatch):
    good, bad = two_runs
    (bad / "config.json").write_text("[]")
    with open(good / "metrics.jsonl", "ab") as handle:
        handle.write(b"\x80\x81\n")

    assert {row["name"]: row["status"] for row in run_history.everyones_runs()} == {
        good.name: "completed", bad.name: "damaged"}
    monkeypatch.setattr(cli, "import_tensorflow_quietly", lambda: None)
    assert cli.main(["runs"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(bad.name in line and "damaged" in line and "config.json holds a list" in line for line in printed)
    assert any(good.name in line and "completed" in line for line in printed)


# ----------------------------------------------------------------- evaluation.json


@pytest.mark.parametrize("content, where", [
    ('{"val": [1, 2', "is not valid JSON"),
    ('["val"]', "holds a list"),
    ('{"val": {"accuracy": "x"}}', "at val"),
    ('{"val": {"images": 2, "accuracy": 0.5, "per_class": [{"class": "cats"}], "confusion": [], "class_names": []}}',
     "at val/per_class/0"),
])
def test_a_malformed_evaluation_is_a_damaged_run_with_the_way_to_measure_again(two_runs, content, where):
    _, bad = two_runs
    (bad / "evaluation.json").write_text(content)

    with pytest.raises(DamagedRunError, match=where) as caught:
        read_evaluation(bad)
    assert "Measure the model again" in str(caught.value)
    with pytest.raises(DamagedRunError):
        evaluate_run(bad)


def test_a_good_evaluation_reads_as_written(two_runs):
    good, _ = two_runs

    assert read_evaluation(good)["val"]["accuracy"] == 1.0
    assert read_evaluation(good.parent / "no-such-run") is None


# ----------------------------------------------------------------- queue.sqlite


def put_in_line(runs: pathlib.Path, name: str, queued_at: float, user: str | None = None) -> pathlib.Path:
    """A run waiting in line, as `queue_training` leaves it (its folder, its status and its entry)."""
    with tlcore.as_user(user):
        run_dir = tlcore.tlcore_home() / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(TrainConfig(data=str(runs / "pictures")).to_json())
    run_record.write_status(run_dir, "waiting", "waiting for its turn to train", queued_at=queued_at)
    run_queue.add(run_dir, user)
    return run_dir


def damage(path: pathlib.Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"this is not a database, just bytes\x00\xff" * 50)
    else:  # cut short, as a full disk or a copy stopped half-way leaves it
        path.write_bytes(path.read_bytes()[:1500])


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_line_is_moved_aside_and_rebuilt_from_the_run_folders_in_order(runs, how, caplog):
    first = put_in_line(runs, "20261207-120000-first", queued_at=time.time() - 30, user="ada")
    second = put_in_line(runs, "20261207-110000-second", queued_at=time.time() - 20, user="bo")
    continued = write_run(runs, "20261207-090000-continued", state="waiting", queued_at=time.time() - 10)
    (continued / "model.keras").write_bytes(b"a model to continue from")
    write_run(runs, "20261207-080000-finished")
    line_file = run_queue.queue_path()
    with sqlite3.connect(line_file) as connection:  # the damage must hit the table, not only an unused page
        connection.execute("VACUUM")
    damage(line_file, how)
    caplog.set_level(logging.WARNING, logger="tlcore.runs")

    line = run_queue.entries()

    assert [(entry.run_dir, entry.owner, entry.state) for entry in line] == [
        (first.resolve(), "ada", "waiting"), (second.resolve(), "bo", "waiting")]
    aside = list(line_file.parent.glob("queue.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].stat().st_size > 0
    assert any("could not be read" in record.getMessage() and aside[0].name in record.getMessage()
               for record in caplog.records)
    assert run_record.read_status(first)["state"] == "waiting"
    assert run_record.read_status(continued)["state"] == "interrupted", "its extra epochs were only in the line"
    assert run_queue.entry_for(second).state == "waiting"
    run_queue.remove(first)
    assert [entry.run_dir for entry in run_queue.entries()] == [second.resolve()]
    assert len(list(line_file.parent.glob("queue.sqlite.damaged-*"))) == 1, "repaired once"


def test_a_run_starting_when_the_line_was_damaged_still_holds_its_slot(runs):
    starting = write_run(runs, "20261207-130000-starting", state="queued", queued_at=time.time() - 5,
                         dispatched_at=time.time() - 1)
    (starting / "worker.pid").write_text("4242")
    run_queue.queue_path().parent.mkdir(parents=True, exist_ok=True)
    damage(run_queue.queue_path(), "garbage")

    entry = run_queue.entry_for(starting)

    assert entry is not None and entry.state == "started" and entry.pid == 4242


def test_every_page_that_reads_the_line_gets_a_rebuilt_one(runs):
    damage_target = run_queue.queue_path()
    damage_target.parent.mkdir(parents=True, exist_ok=True)
    damage(damage_target, "garbage")

    assert tlcore.dispatch_queue() == []
    run_queue.check_can_wait("ada")
    assert run_queue.entries() == []


@pytest.mark.parametrize("content, reason", [
    ('{"val": [1, 2]}', "its split.json lists its val pictures in a form tlcore does not write"),
    ('"val"', "its split.json holds a str"),
])
def test_a_damaged_split_is_a_damaged_run_for_the_readers_that_need_the_pictures(two_runs, content, reason):
    good, bad = two_runs
    (bad / "split.json").write_text(content)
    (good / "split.json").write_text(json.dumps({"val": [["a.png", "cats", "/pictures/a.png"]]}))

    with pytest.raises(DamagedRunError, match=reason):
        run_folder.run_split(bad)
    assert run_folder.run_split(good)["val"][0][1] == "cats"
    assert run_folder.run_split(good.parent / "not-yet") == {}


def test_processes_finding_the_damage_at_once_repair_it_once(runs):
    from concurrent.futures import ThreadPoolExecutor

    waiting = put_in_line(runs, "20261207-150000-waiting", queued_at=time.time() - 5)
    damage(run_queue.queue_path(), "garbage")

    with ThreadPoolExecutor(4) as pool:  # each reader opens its own connection and its own lock, as processes do
        seen = list(pool.map(lambda _: [entry.run_dir for entry in run_queue.entries()], range(8)))

    assert seen == [[waiting.resolve()]] * 8
    assert len(list(run_queue.queue_path().parent.glob("queue.sqlite.damaged-*"))) == 1
