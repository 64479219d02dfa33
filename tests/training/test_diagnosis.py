"""A run that never got past guessing is told so, with what to change."""

from tlcore.training.diagnosis import chance_warning


def rows(*accuracies):
    return [{"type": "epoch", "epoch": i + 1, "accuracy": a} for i, a in enumerate(accuracies)]


def test_accuracy_at_chance_after_a_few_epochs_warns_and_names_the_learning_rate():
    warning = chance_warning(rows(0.30, 0.35, 0.33), classes=3, learning_rate=10.0)
    assert warning and "chance" in warning and "(10)" in warning and "try 0.001" in warning


def test_a_model_that_learns_or_has_too_few_epochs_is_not_warned_about():
    assert chance_warning(rows(0.3, 0.6, 0.9), classes=3, learning_rate=10.0) is None
    assert chance_warning(rows(0.33, 0.33), classes=3, learning_rate=10.0) is None
    assert chance_warning(rows(0.5, None, 0.5), classes=2, learning_rate=1e-3) is None
