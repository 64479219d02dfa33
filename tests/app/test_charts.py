"""The learning curves: the second phase's start is marked where the curves jump."""

from ui.charts import curve_figures, phase_starts


def rows(phases: list[str]) -> list[dict]:
    return [{"epoch": index + 1, "phase": phase, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
            for index, phase in enumerate(phases)]


def test_the_start_of_fine_tuning_is_marked_on_both_charts():
    two_phases = rows(["head"] * 15 + ["fine_tune"] * 25)

    assert phase_starts(two_phases) == [16]
    for figure in curve_figures(two_phases):
        (line,) = figure.layout.shapes
        assert line.x0 == 15.5
        assert figure.layout.annotations[0].text == "blocks learn too"


def test_a_single_phase_or_a_resumed_run_has_no_mark():
    assert phase_starts(rows(["train"] * 10)) == []
    assert phase_starts(rows(["head"] * 3 + ["resume"] * 3)) == []
    assert not curve_figures(rows(["train"] * 3))[0].layout.shapes
