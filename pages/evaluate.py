"""Evaluate: how often a finished (or stopped) run is right, per class, which pictures fool it and why; fix and train again."""

import pathlib

import streamlit as st

import tlcore
from ui import charts, explorer, gate, messages, run_picker, words

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Evaluate: how good is it?")
st.markdown(
    "The model is measured on the **checking pictures** (the validation set) that it never learned from, "
    "so the numbers say how it will do on new pictures like yours."
)


def per_class_table(report: dict) -> None:
    rows = [
        {"class": row["class"], "precision": 100 * row["precision"], "recall": 100 * row["recall"],
         "f1": 100 * row["f1"], "support": row["support"]}
        for row in report["per_class"]
    ]
    st.dataframe(
        rows,
        hide_index=True,
        key="evaluate_per_class",
        column_config={
            "class": "class",
            "precision": st.column_config.ProgressColumn(
                "precision", format="%.0f%%", min_value=0, max_value=100, width="small",
                help="When the model says this class, how often it is right.",
            ),
            "recall": st.column_config.ProgressColumn(
                "recall", format="%.0f%%", min_value=0, max_value=100, width="small",
                help="Of the pictures of this class, how many the model found.",
            ),
            "f1": st.column_config.ProgressColumn(
                "F1", format="%.0f%%", min_value=0, max_value=100, width="small", help="Precision and recall in one number.",
            ),
            "support": st.column_config.NumberColumn("pictures", help="Checking pictures of this class.", width="small"),
        },
    )


def show_report(run_dir: pathlib.Path, report: dict, key: str) -> None:
    accuracy, count = report.get("accuracy"), report.get("images", 0)
    st.markdown(f"#### It got **{words.percent(accuracy)}** of {count} pictures right.")
    columns = st.columns(3)
    columns[0].metric("Accuracy", words.percent(accuracy), help="Share of pictures classified correctly.")
    columns[1].metric("Loss", f"{report['loss']:.3f}" if report.get("loss") is not None else "?",
                      help="How unsure or wrong it was on average; lower is better (0 is perfect).")
    columns[2].metric("Macro F1", words.percent(report.get("macro_f1")),
                      help="The F1 score averaged over classes, each class counting the same.")
    left, right = st.columns([1, 1])
    with left:
        cells = explorer.show_matrix(report, key)
    with right:
        per_class_table(report)
    explorer.show_pictures(run_dir, report, cells, key)


def usable(row: dict) -> bool:
    return row["has_model"] or tlcore.has_evaluation(row["run_dir"])


def measured_reports(run_dir: pathlib.Path) -> dict:
    """The run's evaluation reports; stops with a message while it trains or until asked to measure."""
    if tlcore.read_status(run_dir).get("state") in tlcore.ACTIVE_STATES:
        st.info("This training is still going; it is measured when it ends.")
        messages.link("pages/train.py", "Watch it on Train")
        st.stop()
    if not tlcore.has_evaluation(run_dir):
        st.info("This model has not been measured yet (its training ended early).")
        if not st.button("Measure it now", key="evaluate_measure", help="Loads the model and checks every checking picture."):
            st.stop()
    try:
        saved = tlcore.read_evaluation(run_dir)
    except tlcore.DamagedRunError as error:
        st.warning(str(error))
        if not st.button("Measure it again", key="evaluate_measure_again",
                         help="Loads the model, checks every checking picture and replaces the damaged file."):
            st.stop()
        saved = None
    if saved:
        return saved
    with st.spinner("Measuring…"):
        return tlcore.evaluate_run(run_dir, recompute=True)


with messages.shown_errors():
    watched = run_picker.remembered_run()
    if explorer.retraining(watched):
        explorer.watch_retraining(watched)
        st.stop()
    run_dir = run_picker.choose_run("evaluate_run", "Which training?", usable)
    if run_dir is None:
        st.info("Nothing to evaluate yet: train a model first.")
        messages.link("pages/train.py", "Go to Train")
        st.stop()
    reports = measured_reports(run_dir)
    before = tlcore.previous_run(run_dir)
    if before is not None and tlcore.has_evaluation(before):
        with messages.damage_shown():  # the earlier run's files: this run's report still shows
            explorer.show_comparison(before, run_dir)
        st.divider()
    if "test" in reports:
        val_tab, test_tab = st.tabs(["Checking pictures (validation)", "Test pictures"])
        with val_tab:
            show_report(run_dir, reports["val"], "val")
        with test_tab:
            show_report(run_dir, reports["test"], "test")
    else:
        show_report(run_dir, reports["val"], "val")
    explorer.show_fixes(run_dir)

    epochs = tlcore.epoch_rows(run_dir)
    if epochs:
        with st.expander("How the learning went"):
            charts.show_curves(epochs, key="evaluate_curves")
    messages.link("pages/predict.py", "Next: try it on new pictures →")
