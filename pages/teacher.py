"""Teacher: every student's trainings (stop, delete), the line for the computer, the class board on the demo, and
letting a student whose failed sign-ins make them wait sign in again.

In the menu only for a teacher's account; a student who reaches it anyway is
told it is the teacher's (`tlcore.require_teacher`). Refreshes itself every few seconds.
"""

import datetime

import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import gate, messages, words

REFRESH_SECONDS = 3.0

messages.open_in_app_menu()
gate.require_sign_in()
st.title("Teacher: the whole class")


def run_label(row: dict) -> str:
    return f"{row['user'] or 'server'} · {row['name']} · {words.state_word(row['status'])}"


def runs_table(rows: list[dict]) -> None:
    st.dataframe(
        [{"student": row["user"] or "(server)", "pictures": words.dataset_name(row["data"]) if row.get("data") else "?",
          "status": words.state_word(row["status"]) + (f": {row['damaged']}" if row.get("damaged") else ""),
          "best accuracy": 100 * row["result_val_accuracy"] if row["result_val_accuracy"] is not None else None,
          "started": datetime.datetime.fromtimestamp(row["started_at"]).strftime("%H:%M:%S") if row["started_at"] else "",
          "training": row["name"]} for row in rows],
        hide_index=True, key="teacher_runs_table",
        column_config={"best accuracy": st.column_config.ProgressColumn(format="%.0f%%", min_value=0, max_value=100)},
    )


@messages.shown_errors()  # the message where the button is
def stop_one(rows: list[dict]) -> None:
    active = {run_label(row): row for row in rows if row["status"] in tlcore.ACTIVE_STATES}
    if not active:
        st.caption("Nothing is training or waiting.")
        return
    picked = st.selectbox("Training to stop", list(active), key="teacher_stop_pick")
    if st.button("Stop it", key="teacher_stop"):
        st.success(tlcore.stop_student_run(active[picked]["user"], active[picked]["name"]))


@messages.shown_errors()  # the message where the button is
def delete_one(rows: list[dict]) -> None:
    ended = {run_label(row): row for row in rows if row["status"] not in tlcore.ACTIVE_STATES}
    if not ended:
        return
    with st.expander("Delete a training"):
        picked = st.selectbox("Training to delete", list(ended), key="teacher_delete_pick")
        sure = st.checkbox("Yes, delete its model and curves for good", key="teacher_delete_confirm")
        if st.button("Delete", key="teacher_delete", disabled=not sure):
            tlcore.delete_student_run(ended[picked]["user"], ended[picked]["name"])
            st.rerun()


def line_table() -> None:
    rows = tlcore.class_line()
    st.subheader(f"The line for the computer ({sum(row['state'] == 'waiting' for row in rows)} waiting)")
    if not rows:
        st.caption("Nobody is waiting.")
        return
    st.dataframe(
        [{"place": row["position"] or "now", "student": row["user"] or "(server)",
          "state": "waiting" if row["state"] == "waiting" else "starting or training",
          "starts in about": tlcore.format_duration(row["wait_s"]) if row["wait_s"] is not None else "",
          "training": row["name"]} for row in rows],
        hide_index=True, key="teacher_line_table",
    )


def class_board() -> None:
    st.subheader("Class board: who teaches the demo shapes best")
    st.caption("Each student's best result on the built-in demo dataset (Data page, *Use demo dataset*): the share "
               "of checking pictures its kept model gets right.")
    rows = tlcore.class_board()
    scored = [row for row in rows if row["best_val_accuracy"] is not None]
    if scored:
        figure = go.Figure(go.Bar(x=[row["user"] for row in scored], y=[row["best_val_accuracy"] for row in scored],
                                  text=[words.percent(row["best_val_accuracy"]) for row in scored], textposition="auto"))
        figure.update_layout(height=320, yaxis={"range": [0, 1.02], "tickformat": ".0%"},
                             margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(figure, key="teacher_board_chart", config={"displayModeBar": False})
    st.dataframe([{"student": row["user"], "best": words.percent(row["best_val_accuracy"]),
                   "model": words.backbone_title(row["backbone"]) if row["backbone"] else "", "tries": row["runs"]}
                  for row in rows], hide_index=True, key="teacher_board_table")


@st.fragment(run_every=REFRESH_SECONDS)
@messages.shown_errors()  # a fragment reruns on its own, outside the page's
def class_now() -> None:
    tlcore.dispatch_queue()
    rows = tlcore.class_runs()
    st.subheader(f"Every student's trainings ({len(rows)})")
    if rows:
        runs_table(rows)
        stop_one(rows)
        delete_one(rows)
    else:
        st.info("No trainings yet.")
    line_table()


UNLOCKED_KEY = "teacher_unlock_done"


def computers(count: int) -> str:
    return "many computers" if count == 0 else f"{count} computer" + ("" if count == 1 else "s")


@messages.shown_errors()  # the message where the button is
def sign_in_waits() -> None:
    st.subheader("Sign-in")
    if UNLOCKED_KEY in st.session_state:
        st.success(st.session_state.pop(UNLOCKED_KEY))
    rows = tlcore.sign_in_waits()
    if not rows:
        st.caption("Nobody has to wait before signing in.")
        return
    st.caption("After a few wrong passwords a name waits before its next try. If it is the student's own, let them "
               "try again now (or set a new password: `tlcore users password NAME`).")
    st.dataframe([{"student": row["name"], "wrong tries in a row": row["failed"],
                   "from": computers(row["computers"]), "waits": tlcore.format_duration(row["wait_s"])}
                  for row in rows], hide_index=True, key="teacher_unlock_table")
    picked = st.selectbox("Student", [row["name"] for row in rows], key="teacher_unlock_pick")
    if st.button("Let them sign in again now", key="teacher_unlock"):
        st.session_state[UNLOCKED_KEY] = tlcore.let_sign_in_again(picked)
        st.rerun()


with messages.shown_errors():
    tlcore.require_teacher()
    class_now()
    class_board()
    sign_in_waits()
