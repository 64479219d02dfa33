"""A run with dataset edits: the edits are in its config, the split follows them, and the run reproduces from its config."""

import json
import pathlib

import pytest

from tlcore.data.edits import DatasetEdits
from tlcore.errors import InputError
from tlcore.runs import folder as run_folder
from tlcore.training import again, launch
from tlcore.training.config import TrainConfig
from tlcore.training.run import train

MOVED, LEFT_OUT = "circles/circles_01.jpg", "stripes/stripes_00.png"


def split_of(run_dir) -> dict:
    return json.loads((pathlib.Path(run_dir) / run_folder.SPLIT_FILE).read_text())


def test_an_edited_run_trains_with_its_edits_and_reproduces_from_its_config(shared_tiny_dataset, tiny_config, tmp_path):
    config = tiny_config(shared_tiny_dataset, epochs=1, excluded_files=(LEFT_OUT,), relabels={MOVED: "squares"})

    first = train(config, runs_dir=tmp_path / "runs")

    written = json.loads((pathlib.Path(first.run_dir) / run_folder.CONFIG_FILE).read_text())
    assert written["relabels"] == {MOVED: "squares"} and written["excluded_files"] == [LEFT_OUT]
    split = split_of(first.run_dir)
    entries = {entry[0]: entry for part in split.values() for entry in part}
    assert entries[MOVED][1] == "squares" and entries[MOVED][2] == str(shared_tiny_dataset / MOVED)
    assert LEFT_OUT not in entries
    assert sum(len(part) for part in split.values()) == 23

    read_back = TrainConfig.from_run(first.run_dir)
    second = train(read_back, runs_dir=tmp_path / "runs")

    assert read_back == config
    assert split_of(second.run_dir) == split


def _fake_start(calls):
    def start_training(config, runs_dir=None, **options):
        calls.append(config)
        run_dir = run_folder.new_run_dir(runs_dir, config.backbone, config.data)
        (run_dir / run_folder.CONFIG_FILE).write_text(config.to_json())
        return run_dir

    return start_training


def test_training_again_adds_the_fixes_to_the_runs_edits_and_links_back(tmp_path, monkeypatch):
    old = run_folder.new_run_dir(tmp_path / "runs", "mobilenetv2_035", "pets")
    (old / run_folder.CONFIG_FILE).write_text(TrainConfig(data="pets", excluded_files=("a.jpg",), epochs=3).to_json())
    calls = []
    monkeypatch.setattr(launch, "queue_training", _fake_start(calls))
    fixes = DatasetEdits(("a.jpg", "b.jpg"), {"cats/dog.jpg": "dogs"})

    assert again.pending_fixes(old, fixes) == DatasetEdits(("b.jpg",), {"cats/dog.jpg": "dogs"})
    new = again.train_again(old, fixes, runs_dir=tmp_path / "runs")

    assert calls[0].excluded_files == ("a.jpg", "b.jpg") and calls[0].relabels == (("cats/dog.jpg", "dogs"),)
    assert calls[0].epochs == 3 and calls[0].data == "pets"  # the same settings
    assert again.previous_run(new) == old
    assert again.pending_fixes(new, fixes) == DatasetEdits()
    with pytest.raises(InputError, match="no fixes"):
        again.train_again(new, fixes)
