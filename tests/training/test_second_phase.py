"""The second phase only where it helps: decided from the training pictures alone, and said in words.

Short real runs on tiny synthetic pictures with random weights (as tests/training/test_run.py):
they check what is decided from what, not how accurate it is.
"""

import numpy as np
import pytest

from tlcore.runs import record as run_record
from tlcore.training import second_phase
from tlcore.training.run import resume, train
from tlcore.training.second_phase import SecondPhaseDecision, held_out_part
from tlcore.training.session import TrainingSession


def test_the_held_out_part_takes_a_fifth_of_every_class_the_same_for_the_same_seed():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 3)

    held = held_out_part(labels, seed=1)

    assert [int(held[labels == label].sum()) for label in (0, 1, 2)] == [4, 2, 1]
    assert np.array_equal(held, held_out_part(labels, seed=1))
    assert not np.array_equal(held, held_out_part(labels, seed=2))


def test_the_decision_says_in_words_what_was_decided_and_why():
    dropped = SecondPhaseDecision(keep=False, head_accuracy=0.9, blocks_accuracy=0.85, held_out=20)
    kept = SecondPhaseDecision(keep=True, head_accuracy=0.8, blocks_accuracy=0.9, held_out=20)

    assert dropped.words().startswith("the top blocks did not help on these pictures")
    assert dropped.words().endswith("so only the last layer learns.")
    assert "85 % of 20 training pictures held out" in dropped.words() and "90 %" in dropped.words()
    assert kept.words().startswith("the top blocks helped on these pictures")
    assert dropped.to_dict()["keep"] is False and dropped.to_dict()["words"] == dropped.words()


class Poison:
    """Stands in for the validation pictures during the check: any use of them fails the run."""

    def __getattr__(self, name):
        raise AssertionError(f"the second-phase check used the validation pictures ({name})")

    def __getitem__(self, key):
        raise AssertionError(f"the second-phase check read the validation pictures ({key!r})")

    def __len__(self):
        raise AssertionError("the second-phase check counted the validation pictures")

    def __array__(self, *args, **kwargs):
        raise AssertionError("the second-phase check read the validation pictures")


def test_the_check_never_reads_the_validation_pictures(image_writer, tiny_config, tmp_path, monkeypatch):
    data = image_writer(tmp_path / "data", {"circles": 25, "squares": 25, "stripes": 25})
    seen = {}
    real_decide = second_phase.decide

    def spying_decide(trial, train_features, train_labels, classes, **settings):
        seen.update(features=np.array(train_features), labels=np.array(train_labels))
        return real_decide(trial, train_features, train_labels, classes, **settings)

    real_check = TrainingSession._check_second_phase

    def check_without_validation(session):
        seen["train"] = (np.array(session.cached["train"]), np.array(session.splits["train"]["labels"]))
        kept = session.cached["val"], session.splits["val"]
        session.cached["val"], session.splits["val"] = Poison(), Poison()
        try:
            return real_check(session)
        finally:
            session.cached["val"], session.splits["val"] = kept

    monkeypatch.setattr(second_phase, "decide", spying_decide)
    monkeypatch.setattr(second_phase, "HEAD_EPOCHS", 2)  # short trials: what they read is checked, not how well they learn
    monkeypatch.setattr(second_phase, "TRIAL_EPOCHS", 1)
    monkeypatch.setattr(TrainingSession, "_check_second_phase", check_without_validation)
    config = tiny_config(data, epochs=3, two_phase=True, head_epochs=1, freeze="top:1", second_phase_check=True)

    result = train(config, runs_dir=tmp_path / "runs")

    assert result.status == "completed", result.message
    train_features, train_labels = seen["train"]
    assert np.array_equal(seen["features"], train_features) and np.array_equal(seen["labels"], train_labels)
    decision = run_record.read_status(result.run_dir)["second_phase"]
    assert decision["held_out"] == 12  # a fifth of the 60 training pictures, none of the 15 validation ones
    assert 0.0 <= decision["head_accuracy"] <= 1.0 and 0.0 <= decision["blocks_accuracy"] <= 1.0
    rows = [row for row in run_record.read_metrics(result.run_dir) if row.get("type") == "second_phase"]
    assert [row["keep"] for row in rows] == [decision["keep"]]


@pytest.mark.parametrize("keep", [False, True])
def test_the_run_follows_the_decision_and_records_it(keep, shared_tiny_dataset, tiny_config, tmp_path, monkeypatch):
    decision = SecondPhaseDecision(keep=keep, head_accuracy=0.9, blocks_accuracy=0.8 if not keep else 0.95, held_out=12)
    monkeypatch.setattr(second_phase, "decide", lambda *args, **settings: decision)
    config = tiny_config(shared_tiny_dataset, epochs=3, two_phase=True, head_epochs=1, freeze="top:1",
                         fine_tune_learning_rate=1e-4, second_phase_check=True)

    result = train(config, runs_dir=tmp_path / "runs")

    assert result.status == "completed", result.message
    rows = run_record.epoch_rows(result.run_dir)
    if keep:
        assert [row["phase"] for row in rows] == ["head", "fine_tune", "fine_tune"]
        assert [row["lr"] for row in rows] == pytest.approx([0.01, 1e-4, 1e-4])
    else:  # the new layer goes on alone, at its own rate, on pooled features
        assert [row["phase"] for row in rows] == ["head"] * 3
        assert [row["lr"] for row in rows] == pytest.approx([0.01] * 3)
        assert "last layer alone" in result.feature_cache
    status = run_record.read_status(result.run_dir)
    assert status["second_phase"]["words"] == decision.words()
    assert result.val_accuracy is not None  # the final model was evaluated
    if not keep:  # continued later, it goes on as it ended: the new layer alone
        resumed = resume(result.run_dir, 1)
        assert resumed.status == "completed" and "after global pooling" in resumed.feature_cache


def test_without_the_check_the_second_phase_always_runs_and_says_so(shared_tiny_dataset, tiny_config, tmp_path, monkeypatch):
    def no_check(*args, **settings):
        raise AssertionError("the check ran although the config did not ask for it")

    monkeypatch.setattr(second_phase, "decide", no_check)
    config = tiny_config(shared_tiny_dataset, epochs=2, two_phase=True, head_epochs=1, freeze="top:1")

    result = train(config, runs_dir=tmp_path / "runs")

    assert [row["phase"] for row in run_record.epoch_rows(result.run_dir)] == ["head", "fine_tune"]
    recorded = run_record.read_status(result.run_dir)["second_phase"]
    assert recorded["keep"] and not recorded["checked"] and "was not checked on these pictures" in recorded["words"]
