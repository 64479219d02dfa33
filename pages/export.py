"""Export: one zip with the chosen model files, a model card and ready-to-run code, each file checked against the app."""

import pathlib

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import gate, messages, parity, run_picker, words

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Export: take your model with you")


def choose_formats() -> list[str]:
    formats = tlcore.export_formats()
    st.markdown("Where should the model run? Each file goes into one zip with **labels.json** (the classes), "
                "**MODEL_CARD.md** (what it learned from, how well it does, its limits) and code that runs it.")
    st.markdown("\n".join(f"- **{item.title}**: {item.purpose}" for item in formats))
    titles = {item.name: item.title for item in formats}
    return st.multiselect("Files to put in the zip", list(titles), default=list(tlcore.DEFAULT_BUNDLE_FORMATS),
                          format_func=titles.get, key="export_formats")


@messages.shown_errors()  # the message where the button is
def bundle_section(run_dir: pathlib.Path, formats: list[str]) -> None:
    bundle = tlcore.saved_bundle(run_dir)
    if bundle is None or list(bundle.formats) != formats:
        offer = st.empty()
        with offer.container():
            st.caption("tlcore makes each file, then checks it outside the app on your checking pictures: "
                       "a few seconds per file, up to a minute for the 8-bit one.")
            clicked = st.button("Prepare the zip", key="export_prepare", type="primary", disabled=not formats)
        if not clicked:
            return
        offer.empty()
        with st.spinner("Making each file and checking it against the app…"):
            bundle = tlcore.make_bundle(run_dir, formats)
    if bundle.note:
        st.warning(bundle.note)
    parity.show_parity(list(bundle.reports))
    st.download_button(f"Download {bundle.path.name}", data=bundle.path.read_bytes, file_name=bundle.path.name,
                       mime="application/zip", key="export_download_bundle", type="primary")
    st.caption(f"{bundle.path.stat().st_size / 1e6:.1f} MB")


def snippets(run_dir: pathlib.Path) -> None:
    st.subheader("Use it in your own code")
    st.caption("Each script is in the zip; it prepares pictures exactly as the app does, so it gives the app's answers.")
    for snippet in tlcore.export_snippets(run_dir):
        title = tlcore.export_format(snippet.format).title
        label = f"{snippet.file_name} — {'a web page of your own' if snippet.language == 'javascript' else title}"
        with st.expander(label):
            st.code(snippet.code, language=snippet.language)


def history() -> None:
    st.header("All trainings")
    rows = tlcore.list_runs()
    if not rows:
        st.info("No trainings yet.")
        return
    st.dataframe(
        [
            {
                "training": row["name"],
                "model": words.backbone_title(row["backbone"]),
                "pictures": words.dataset_name(row["data"]) if row.get("data") else "?",
                "status": words.state_word(row["status"]),
                "best validation accuracy": 100 * row["best_val_accuracy"] if row["best_val_accuracy"] is not None else None,
                "epochs": row["epochs_run"],
                "duration": tlcore.format_duration(row["duration_s"]) if row["duration_s"] else "",
            }
            for row in rows
        ],
        hide_index=True,
        key="export_history_table",
        column_config={"best validation accuracy": st.column_config.ProgressColumn(format="%.0f%%", min_value=0, max_value=100)},
    )
    names = [row["name"] for row in rows]
    by_name = {row["name"]: row for row in rows}
    label = {name: run_picker.describe_run(by_name[name]) for name in names}
    picked = st.multiselect("Compare the learning curves of", names, default=names[:3], key="export_compare",
                            format_func=label.get)
    if picked:
        figure = go.Figure()
        for name in picked:
            epochs = tlcore.epoch_rows(by_name[name]["run_dir"])
            figure.add_trace(go.Scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_accuracy") for r in epochs],
                                        mode="lines+markers", name=label[name]))
        figure.update_layout(title="Accuracy on the checking pictures", height=340, xaxis_title="epoch", showlegend=True,
                             legend={"orientation": "h", "y": -0.25},
                             yaxis={"tickformat": ".0%", "range": [0, 1.02]}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(figure, key="export_compare_chart", config={"displayModeBar": False})
    with st.expander("Delete a training"):
        doomed = st.selectbox("Training to delete", names, key="export_delete_pick",
                              format_func=lambda name: label[name])
        sure = st.checkbox("Yes, delete its model and curves for good", key="export_delete_confirm")
        st.button("Delete", key="export_delete", disabled=not sure, on_click=delete, args=(doomed,))
        if "export_delete_error" in st.session_state:
            st.error(tlcore.markdown_text(st.session_state.pop("export_delete_error")))


def delete(name: str) -> None:
    """Delete a run (a button callback, so the confirmation can be reset before the page is drawn)."""
    run_dir = tlcore.find_run(name)
    if run_dir is None:
        st.session_state["export_delete_error"] = f"There is no training called {name!r} any more."
        return
    try:
        tlcore.delete_run(run_dir)
    except tlcore.TlcoreError as error:
        st.session_state["export_delete_error"] = str(error)
        return
    st.session_state["export_delete_confirm"] = False
    run_picker.forget_run(name)


with messages.shown_errors():
    run_dir = run_picker.choose_run("export_run", "Which trained model?", run_picker.has_model)
    if run_dir is None:
        st.info("No trained model yet: train one first.")
        messages.link("pages/train.py", "Go to Train")
    else:
        with messages.damage_shown():  # a config.json edited by hand: one line, and the list below still shows
            bundle_section(run_dir, choose_formats())
            snippets(run_dir)
    history()
