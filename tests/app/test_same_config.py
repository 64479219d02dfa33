"""The app's Train page and `tlcore train` make the same config for the same pictures (one function builds it)."""

import json
import os
import pathlib
import time

import pytest
from conftest import RECORDED_RATES, home_with_recorded_speeds, write_class_folders
from streamlit.testing.v1 import AppTest

import tlcore
import tlcore.training.launch
from tlcore.cli.main import _planned_run
from tlcore.cli.parser import build_parser
from tlcore.data.audit import audit_dataset

REPO = pathlib.Path(__file__).resolve().parents[2]
RATES = RECORDED_RATES  # a probe's figures on this computer: no measuring and no timing in the test


@pytest.fixture
def imbalanced(tmp_path, monkeypatch):
    """30 pictures of one class and 8 of another (the audit finds them imbalanced), weights 'here', speeds recorded."""
    home_with_recorded_speeds(tmp_path, monkeypatch, weights_for=RATES)
    data = write_class_folders(tmp_path / "pets", {"cats": 30, "dogs": 8})
    home = tmp_path / "home"
    (home / "app_state.json").write_text(json.dumps({"dataset_path": str(data)}))
    return data


def _config_the_page_starts(home: pathlib.Path, preset: str, monkeypatch):
    started = []

    def start_training(config, runs_dir=None, **options):  # as tlcore.queue_training, which the page calls
        started.append(config)
        run_dir = home / "runs" / "20261207-120000-run"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        (run_dir / "status.json").write_text(json.dumps({"state": "queued", "message": "starting", "queued_at": time.time()}))
        (run_dir / "worker.pid").write_text(str(os.getpid()))
        return run_dir

    monkeypatch.setattr(tlcore.training.launch, "queue_training", start_training)
    app = AppTest.from_file(str(REPO / "pages/train.py"), default_timeout=60).run()
    app.radio(key="train_preset").set_value(preset).run()
    app.button(key="train_start").click().run()
    assert not app.exception, app.exception
    return started[0]


@pytest.mark.parametrize("preset", ["best", "fast"])
def test_the_app_and_the_command_line_make_the_same_config(imbalanced, preset, monkeypatch):
    page_config = _config_the_page_starts(pathlib.Path(os.environ["TLCORE_HOME"]), preset, monkeypatch)

    args = build_parser().parse_args(["train", str(imbalanced), "--preset", preset])
    cli_config = _planned_run(args, audit_dataset(str(imbalanced), 0.2, 42)).config

    assert page_config.to_dict() == cli_config.to_dict()
    assert cli_config.class_weights, "the audit found the classes imbalanced: both balance them"
    assert cli_config.preset == preset
    assert cli_config.backbone in RATES
