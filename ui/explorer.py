"""The Evaluate page's explorer: click a cell of the confusion matrix, see its pictures and where the model looked, fix them.

The matrix is a Plotly heatmap with one invisible marker on each cell, because
Plotly reports clicks on markers (not on heatmap cells) as Streamlit selection
events (`st.plotly_chart(..., on_select="rerun")`); the selection's points name
the cells. Each picture of the chosen cells shows its file name, its true and
predicted class, how sure the model was and a Grad-CAM heatmap
(`tlcore.explain_files`, kept in the run folder); it can be moved to another
class or left out (`ui.edits`), and "Train again with these fixes" starts a run
with the same settings and the edits (`tlcore.train_again`).
"""

from __future__ import annotations

import pathlib

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import charts, choices, edits, lists, messages, models, run_picker, words

PICTURES_PER_PAGE = 12
COLUMNS = 4


# ----------------------------------------------------------------- the matrix and its selection


def confusion_figure(report: dict) -> go.Figure:
    """The confusion matrix as a heatmap whose cells can be clicked (shift-click adds cells)."""
    names, matrix = report["class_names"], report["confusion"]
    cells = [(true, said) for true in names for said in names]
    shown = [tlcore.html_text(name) for name in names]  # Plotly reads a few HTML tags in its labels
    figure = go.Figure(go.Heatmap(
        z=matrix, x=shown, y=shown, text=matrix, texttemplate="%{text}", colorscale="Blues", showscale=False,
        hoverinfo="skip",
    ))
    figure.add_trace(go.Scatter(
        x=[tlcore.html_text(said) for _, said in cells], y=[tlcore.html_text(true) for true, _ in cells], mode="markers",
        customdata=[[true, said] for true, said in cells],
        text=[f"{matrix[names.index(true)][names.index(said)]} picture(s)" for true, said in cells],
        hovertemplate="true class %{y}, model said %{x}: %{text}<extra>click to see them</extra>",
        marker={"symbol": "square", "size": max(16, min(44, 240 // max(1, len(names)))), "color": "rgba(0,0,0,0)"},
        selected={"marker": {"color": "rgba(255,140,0,0.35)"}}, unselected={"marker": {"opacity": 0}},
        showlegend=False,
    ))
    figure.update_layout(
        title="Confusion matrix (click a cell)", height=120 + 60 * len(names), margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title="what the model said", yaxis_title="true class",
        dragmode=False,  # with a drag mode, Plotly turns a click into an empty box selection
        hovermode="closest", hoverdistance=-1,  # a click anywhere in a cell picks that cell's marker
    )
    # Fixed ranges: the markers must not pad the axes, so each cell is exactly 1/n of the plot.
    figure.update_xaxes(type="category", fixedrange=True, range=[-0.5, len(names) - 0.5])
    figure.update_yaxes(type="category", fixedrange=True, range=[len(names) - 0.5, -0.5])
    return figure


def cells_from_points(points: list[dict]) -> list[tuple[str, str]]:
    """The (true class, predicted class) cells a chart selection's points name, in order, without repeats."""
    cells = []
    for point in points or []:
        data = point.get("customdata")
        cell = (str(data[0]), str(data[1])) if isinstance(data, (list, tuple)) and len(data) == 2 else (
            str(point.get("y")), str(point.get("x")))
        if cell not in cells:
            cells.append(cell)
    return cells


def show_matrix(report: dict, key: str) -> list[tuple[str, str]]:
    """The clickable matrix, and a menu for the same choice; returns the chosen cells ([] for every mistake)."""
    event = st.plotly_chart(confusion_figure(report), key=f"evaluate_confusion_{key}", on_select="rerun",
                            selection_mode="points", config={"displayModeBar": False})
    st.caption("Each row is a true class, each column what the model said; the diagonal holds the right answers. "
               "Click a cell to see its pictures (shift-click to add more cells, double-click to clear).")
    try:
        cells = cells_from_points(event["selection"]["points"])
    except (KeyError, TypeError):
        cells = []
    if cells:
        return cells
    names, matrix = report["class_names"], report["confusion"]
    options = [None] + [(t, s) for t in names for s in names if matrix[names.index(t)][names.index(s)]]
    picked = st.selectbox(
        "…or choose which pictures to see", options, key=f"evaluate_cell_{key}",
        format_func=lambda cell: "every mistake" if cell is None else
        f"is {cell[0]}, said {cell[1]} ({matrix[names.index(cell[0])][names.index(cell[1])]})",
    )
    return [picked] if picked else []


# ----------------------------------------------------------------- the pictures


def _relative(file: str, root: str | None) -> str | None:
    try:
        return pathlib.Path(file).resolve().relative_to(pathlib.Path(root).resolve()).as_posix() if root else None
    except (ValueError, OSError):
        return None


def _heatmaps(run_dir: pathlib.Path, files: list[str], compute: bool) -> dict:
    """{file: explanation} for the pictures on screen: kept ones always, the others computed when asked."""
    found = tlcore.kept_explanations(run_dir, files)
    missing = [file for file in files if file not in found]
    if compute and missing:
        with st.spinner(f"Looking where the model looked in {words.count(len(missing), 'picture')}…"):
            model, labels = models.loaded(run_dir)
            for item in tlcore.explain_files(run_dir, missing, model=model, labels=labels):
                found[item.file] = item
    return found


def _actions(data: str, relative: str | None, row: dict, classes: list[str], key: str) -> None:
    if relative is None:
        st.caption("(not in the chosen pictures' folder: no changes possible)")
        return
    current = choices.dataset_edits(data)
    if relative in current.excluded_files:
        st.markdown("**Left out** of the next training")
        edits.undo_button(data, [relative], key=f"{key}_undo")
    elif relative in current.relabel_map:
        st.markdown(f"**Moved to {tlcore.markdown_text(repr(current.relabel_map[relative]))}** for the next training")
        edits.undo_button(data, [relative], key=f"{key}_undo")
    else:
        edits.move_control(data, relative, row["true"], classes, key=f"{key}_move")
        edits.leave_out_button(data, [relative], "Leave out", key=f"{key}_leave_out")


def show_pictures(run_dir: pathlib.Path, report: dict, cells: list[tuple[str, str]], key: str) -> None:
    """The chosen cells' pictures, a page at a time, each with its heatmap and what can be done with it."""
    rows = [row for row in tlcore.cell_pictures(report, cells) if row.get("file") and pathlib.Path(row["file"]).is_file()]
    if cells:
        what = "; ".join(f"is {true}, said {said}" for true, said in cells)
        st.subheader(f"Pictures where it {tlcore.markdown_text(what)} ({len(rows)})")
    else:
        st.subheader(f"Pictures it got wrong ({report.get('mistakes_total', len(rows))})")
    if not rows:
        st.success("No mistakes on these pictures." if not cells else "No pictures in this cell.")
        return
    st.caption("Most confident first. A picture in the wrong folder can be moved to its class; a picture that does "
               "not belong can be left out.")
    shown = lists.paged(rows, f"evaluate_pictures_{key}", PICTURES_PER_PAGE, "picture")
    asked = st.session_state.get(f"evaluate_heatmaps_{key}") or bool(cells)
    found = _heatmaps(run_dir, [row["file"] for row in shown], compute=asked)
    if len(found) == len(shown):
        st.caption("Heatmaps: the colours show where the model looked to decide (red: most, blue: least).")
    elif not asked:
        st.button("Show where the model looked", key=f"evaluate_heatmaps_button_{key}",
                  on_click=lambda: st.session_state.update({f"evaluate_heatmaps_{key}": True}))
    data = tlcore.run_config(run_dir).get("data")
    root = report.get("root") or data
    for start in range(0, len(shown), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), shown[start:start + COLUMNS], strict=False):
            with column:
                _picture_card(row, found.get(row["file"]), data, _relative(row["file"], root), report["class_names"],
                              f"evaluate_{key}_{start}_{row['file']}")


def _picture_card(row: dict, explanation, data: str, relative: str | None, classes: list[str], key: str) -> None:
    picture = explanation.overlay_png if explanation is not None else charts.thumbnail(row["file"], 320)
    if picture is not None:
        st.image(picture, caption=tlcore.markdown_text(lists.short_name(relative or row["file"])), width="stretch")
    verdict = "right" if row["true"] == row["predicted"] else "wrong"
    st.markdown(f"is **{tlcore.markdown_text(row['true'])}**, said **{tlcore.markdown_text(row['predicted'])}** "
                f"({row['confidence']:.0%} sure, {verdict})")
    _actions(data, relative, row, classes, key)


# ----------------------------------------------------------------- training again, and before / after


def show_fixes(run_dir: pathlib.Path) -> None:
    """What would change in a new training, and the one click that trains it."""
    data = tlcore.run_config(run_dir).get("data")
    if not data:
        return
    pending = tlcore.pending_fixes(run_dir, choices.dataset_edits(data))
    st.subheader("Fix and train again")
    if not pending:
        st.caption("Move pictures that are in the wrong folder, or leave out ones that do not belong; then train again "
                   "with the same settings to see whether it helps.")
        return
    st.markdown(f"Your fixes: **{len(pending.relabels)}** moved to another class, **{len(pending.excluded_files)}** "
                "left out (your files are not touched).")
    if st.button(f"Train again with these fixes ({pending.count()})", key="evaluate_train_again", type="primary",
                 help="A new training with the same settings as this one and your fixes; this one is kept."):
        new_run = tlcore.train_again(run_dir, choices.dataset_edits(data))
        run_picker.attach_run(new_run)
        st.rerun()


def retraining(run_dir: pathlib.Path | None) -> bool:
    """True when this run is a training again that is still going."""
    return (run_dir is not None and tlcore.read_status(run_dir).get("state") in tlcore.ACTIVE_STATES
            and tlcore.previous_run(run_dir) is not None)


@st.fragment(run_every=1.0)
@messages.shown_errors()  # a fragment reruns on its own, outside the page's
def watch_retraining(run_dir: pathlib.Path) -> None:
    """The training again, until it ends; then the whole page, with the two runs side by side."""
    status = tlcore.read_status(run_dir)
    if status.get("state") not in tlcore.ACTIVE_STATES:
        st.rerun()
    epoch, epochs = int(status.get("epoch") or 0), max(1, int(status.get("epochs") or 1))
    st.progress(min(1.0, epoch / epochs), text=f"Training again with your fixes: {tlcore.markdown_text(status.get('message', 'starting'))} "
                f"(epoch {epoch} of {epochs})")
    st.button("Stop", key="evaluate_stop_again", on_click=messages.shown_errors()(tlcore.request_stop), args=(run_dir,),
              help="Ends it soon; the best model so far is kept and compared.")


def show_comparison(before: pathlib.Path, after: pathlib.Path) -> None:
    """The run before the fixes and this one, side by side."""
    comparison = tlcore.compare_runs(before, after)
    st.subheader("Before and after your fixes")
    same = comparison["same_pictures"]
    columns = st.columns(3)
    columns[0].metric("Before", words.percent(comparison["before"]["accuracy"]), help=f"Run {before.name}.")
    change = comparison["accuracy_change"]
    columns[1].metric("After", words.percent(comparison["after"]["accuracy"]),
                      delta=None if change is None else f"{100 * change:+.0f} points")
    columns[2].metric("On the same pictures", f"{words.percent(same['accuracy_before'])} → {words.percent(same['accuracy_after'])}",
                      help=f"The {same['images']} checking pictures both trainings were checked on.")
    def points(value):
        return None if value is None else 100 * value

    st.dataframe([{"class": row["class"], "F1 before": points(row["f1_before"]), "F1 after": points(row["f1_after"]),
                   "change": points(row["f1_change"])} for row in comparison["per_class"]],
                 hide_index=True, key="evaluate_compare_classes", column_config={
                     "F1 before": st.column_config.NumberColumn("F1 before", format="%.0f%%"),
                     "F1 after": st.column_config.NumberColumn("F1 after", format="%.0f%%"),
                     "change": st.column_config.NumberColumn("change (points)", format="%+.0f",
                                                             help="F1 after minus F1 before; more is better.")})
    for title, rows in (("Fixed: wrong before, right now", comparison["fixed"]),
                        ("New mistakes: right before, wrong now", comparison["new_mistakes"])):
        st.markdown(f"**{title} ({len(rows)})**")
        if rows:
            charts.show_thumbnails([row["file"] for row in rows], [
                f"{lists.short_name(row['file'])}: is {row['true_after']}, said {row['said_before']} → {row['said_after']}"
                for row in rows], size=120)
    if comparison["no_longer_checked"]:
        st.caption(f"{words.count(len(comparison['no_longer_checked']), 'picture')} checked before are not checked now "
                   "(left out, or moved to the learning pictures).")
