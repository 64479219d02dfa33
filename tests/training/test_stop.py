"""Stop is honoured in every phase and every pass, for both presets.

Each test trains a tiny real run in this process and asks it to stop at one
moment: during a phase's feature pass, or during its epochs. The request is
made from the run's own progress rows (the moment `metrics.jsonl` says the run
is there), not after a sleep, so the stop always lands where the test means.

The presets' shapes at tiny sizes: "fast" freezes the whole backbone and trains
one phase on pooled features; "best" trains the new layer alone first ("head"),
then the top block too ("fine_tune") on features cut below that block.
"""

from __future__ import annotations

import json

import keras
import pytest

from tlcore.results.evaluation import evaluate_run
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training.run import train

PRESET_SHAPES = {
    "fast": dict(freeze="all", two_phase=False, epochs=2),
    "best": dict(freeze="top:1", two_phase=True, head_epochs=1, epochs=3, fine_tune_learning_rate=1e-4),
}

# (preset, phase, pass): where the stop is asked for.
MOMENTS = [
    ("fast", "train", "features"),
    ("fast", "train", "epochs"),
    ("best", "head", "features"),
    ("best", "head", "epochs"),
    ("best", "fine_tune", "features"),
    ("best", "fine_tune", "epochs"),
]


def stop_at(monkeypatch, run_dir, preset: str, phase: str, moment: str) -> list:
    """Ask the run to stop at the first progress row of `phase`'s feature pass or epochs; returns the rows seen."""
    rows = []
    phase_order = ["head", "fine_tune"] if preset == "best" else ["train"]
    append = run_record.append_metrics

    def watching(directory, row):
        append(directory, row)
        rows.append(row)
        phases_begun = {seen["phase"] for seen in rows if seen.get("type") == "epoch"}
        earlier = set(phase_order[: phase_order.index(phase)])
        if row.get("type") != "progress" or run_record.stop_requested(run_dir):
            return
        if moment == "features" and row.get("phase") == "features" and phases_begun == earlier:
            run_record.request_stop(run_dir)
        if moment == "epochs" and row.get("phase") == phase:
            run_record.request_stop(run_dir)

    monkeypatch.setattr(run_record, "append_metrics", watching)
    return rows


@pytest.mark.parametrize("preset, phase, moment", MOMENTS, ids=["-".join(moment) for moment in MOMENTS])
def test_a_stop_in_any_phase_and_pass_ends_stopped_with_the_best_model_evaluated(
        preset, phase, moment, shared_tiny_dataset, tiny_config, tmp_path, monkeypatch):
    config = tiny_config(shared_tiny_dataset, **PRESET_SHAPES[preset])
    run_dir = run_folder.new_run_dir(tmp_path / "runs", config.backbone, config.data)
    stop_at(monkeypatch, run_dir, preset, phase, moment)

    result = train(config, run_dir=run_dir)

    status = run_record.read_status(run_dir)
    assert (result.status, status["state"]) == ("stopped", "stopped"), status["message"]
    assert not (run_dir / run_folder.STOP_FILE).exists(), "the stop was honoured; its request is not left behind"
    epochs = run_record.epoch_rows(run_dir)
    phases_trained = [row["phase"] for row in epochs]
    assert phase not in phases_trained[:-1], "the phase asked to stop ran no further epoch"
    if moment == "features":
        assert phase not in phases_trained, "a phase stopped in its feature pass trains no epoch"
    if not epochs:
        assert "no model" in status["message"]
        assert not (run_dir / run_folder.MODEL_FILE).exists()
        assert not (run_dir / run_folder.EVALUATION_FILE).exists()
        return
    assert "best model" in status["message"]
    model = keras.saving.load_model(run_dir / run_folder.MODEL_FILE, safe_mode=True)
    assert model.output_shape == (None, 3)
    saved = json.loads((run_dir / run_folder.EVALUATION_FILE).read_text())["val"]
    if phase != "fine_tune":
        return
    # The second phase's cut differs from the first's: the evaluation must still be the saved model's.
    again = evaluate_run(run_dir, recompute=True)["val"]
    assert again["confusion"] == saved["confusion"], "the evaluation is the saved (best) model's"
    assert again["loss"] == pytest.approx(saved["loss"], abs=1e-4)
