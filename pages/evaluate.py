"""Evaluate: how often a finished (or stopped) run is right, per class, and which pictures fool it."""

import pathlib

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import charts, gate, messages, run_picker, words

MISTAKES_SHOWN = 24

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Evaluate: how good is it?")
st.markdown(
    "The model is measured on the **checking pictures** (the validation set) that it never learned from, "
    "so the numbers say how it will do on new pictures like yours."
)


def confusion_figure(report: dict) -> go.Figure:
    names, matrix = report["class_names"], report["confusion"]
    figure = go.Figure(
        go.Heatmap(
            z=matrix, x=names, y=names, text=matrix, texttemplate="%{text}", colorscale="Blues", showscale=False,
            hovertemplate="true class %{y}, model said %{x}: %{z} picture(s)<extra></extra>",
        )
    )
    figure.update_layout(
        title="Confusion matrix", height=120 + 60 * len(names), margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title="what the model said", yaxis_title="true class",
    )
    figure.update_yaxes(autorange="reversed")
    return figure


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


def show_mistakes(report: dict) -> None:
    mistakes = [m for m in report.get("mistakes", []) if m.get("file") and pathlib.Path(m["file"]).is_file()]
    total = report.get("mistakes_total", len(report.get("mistakes", [])))
    st.subheader(f"Pictures it got wrong ({total})")
    if not total:
        st.success("No mistakes on these pictures.")
        return
    st.caption("Most confident mistakes first. Look for pictures in the wrong folder, or kinds of picture a class lacks.")
    shown = mistakes[:MISTAKES_SHOWN]
    charts.show_thumbnails(
        [m["file"] for m in shown],
        [f"is {m['true']}, said {m['predicted']} ({m['confidence']:.0%})" for m in shown],
        size=150,
    )
    if len(mistakes) < total:
        st.caption(f"{total - len(mistakes)} more are not shown (listed up to 200, or the files were moved).")


def show_report(report: dict, key: str) -> None:
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
        st.plotly_chart(confusion_figure(report), key=f"evaluate_confusion_{key}", config={"displayModeBar": False})
        st.caption("Each row is a true class, each column what the model said; the diagonal holds the right answers.")
    with right:
        per_class_table(report)
    show_mistakes(report)


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
    with st.spinner("Measuring…"):
        return tlcore.evaluate_run(run_dir)


with messages.shown_errors():
    run_dir = run_picker.choose_run("evaluate_run", "Which training?", usable)
    if run_dir is None:
        st.info("Nothing to evaluate yet: train a model first.")
        messages.link("pages/train.py", "Go to Train")
        st.stop()
    reports = measured_reports(run_dir)
    if "test" in reports:
        val_tab, test_tab = st.tabs(["Checking pictures (validation)", "Test pictures"])
        with val_tab:
            show_report(reports["val"], "val")
        with test_tab:
            show_report(reports["test"], "test")
    else:
        show_report(reports["val"], "val")

    epochs = tlcore.epoch_rows(run_dir)
    if epochs:
        with st.expander("How the learning went"):
            charts.show_curves(epochs, key="evaluate_curves")
    messages.link("pages/predict.py", "Next: try it on new pictures →")
