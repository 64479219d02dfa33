"""Data: choose the pictures (demo, folder upload, zip, server folder), then see the audit."""


import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import audit_cache, charts, choices, findings, gate, lists, messages, words
from ui import edits as ui_edits

THUMBNAILS_PER_CLASS = 8
SPLIT_WORDS = {"train": "for learning", "val": "for checking (validation)", "test": "for the final test"}

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Data: your pictures")
st.markdown(
    "The computer learns from examples. Put the pictures of each kind of thing (each **class**) in its own folder, "
    "named after the class, e.g. `pets/cats/…` and `pets/dogs/…`. Twenty or more pictures per class is a good start."
)


def use_demo() -> None:
    if st.button("Use demo dataset", key="data_use_demo", type="primary",
                 help="Draws 160 pictures of circles, squares, triangles and stars on this computer (a few seconds)."):
        choices.choose_demo_dataset()
    st.caption("No pictures at hand? The demo has 4 classes of drawn shapes on busy backgrounds, 40 pictures each.")


@messages.shown_errors()  # the message where the button is
def upload_folder() -> None:
    files = st.file_uploader(
        "Pick the folder that holds one folder per class",
        accept_multiple_files="directory",
        key="data_folder_upload",
        help="Your browser sends every file in the folder. Hidden files are ignored.",
    )
    st.caption(f"The browser sends the pictures one by one: about a minute for 1,000, and it slows down badly "
               f"beyond a few thousand. For more pictures, zip the folder and use *Upload a .zip* (up to "
               f"{tlcore.MAX_ZIP_GIGABYTES:g} GB unpacked), or ask for a folder on this computer.")
    if files and st.button("Use these pictures", key="data_use_folder_upload"):
        saved = tlcore.save_uploaded_files([(file.name, file) for file in files])
        choices.set_dataset(tlcore.keep_if_usable(saved.root))
        if saved.skipped:
            st.session_state["upload_skipped"] = list(saved.skipped)


@messages.shown_errors()  # the message where the button is
def upload_zip() -> None:
    file = st.file_uploader("A .zip of the folder", type=["zip"], key="data_zip_upload",
                            help="Zip the folder that holds one folder per class.")
    if file is not None and st.button("Use this zip", key="data_use_zip"):
        choices.set_dataset(tlcore.keep_if_usable(tlcore.save_uploaded_file(file.name, file)))


@messages.shown_errors()  # the message where the button is
def server_folder() -> None:
    if not tlcore.server_paths_enabled():
        st.info(
            "Reading folders on this computer is turned off, so visitors cannot browse its files. "
            f"Whoever starts the app can share folders by setting `{tlcore.DATA_ROOTS_ENV_VAR}` "
            "(e.g. `TLCORE_DATA_ROOTS=/home/me/pictures streamlit run app.py`)."
        )
        return
    folders = [str(folder) for folder in tlcore.list_shared_folders()]
    picked = st.selectbox("Shared folders", [""] + folders, key="data_server_pick",
                          format_func=lambda text: text or "(choose a folder)")
    typed = st.text_input("…or type a path", key="data_server_path", placeholder="e.g. flowers or /srv/datasets/flowers",
                          help="Only folders inside: " + ", ".join(str(r) for r in tlcore.configured_roots()))
    if st.button("Use this folder", key="data_use_server_path"):
        choices.set_dataset(tlcore.resolve_server_path(typed.strip() or picked))


def counts_chart(audit) -> go.Figure:
    counts = audit.counts()
    figure = go.Figure()
    for split, colour in (("train", charts.TRAIN_COLOUR), ("val", charts.VAL_COLOUR), ("test", "#2ca02c")):
        values = [counts[name][split] for name in audit.class_names]
        if any(values):
            figure.add_trace(go.Bar(x=[tlcore.html_text(name) for name in audit.class_names], y=values,
                                    name=SPLIT_WORDS[split], marker_color=colour))
    figure.update_layout(barmode="stack", title="Pictures per class", height=320,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, yaxis_title="pictures")
    return figure


def show_audit(path: str) -> None:
    split = st.slider(
        "Share of each class kept aside for checking", 10, 40, round(choices.val_split() * 100), 5, format="%d%%",
        key="data_val_split",
        help="These pictures are never learned from; the app checks the model on them after every epoch "
        "(the validation set). Ignored when your folder already has train/ and val/ folders.",
    )
    choices.set_val_split(split / 100)
    edits = choices.dataset_edits(path)
    audit = audit_cache.audit(path, split / 100, edits=edits)
    sizes = {name: len(audit.split_records(name)) for name in tlcore.SPLITS}
    columns = st.columns(6)
    columns[0].metric("Classes", len(audit.class_names))
    columns[1].metric("Pictures", len(audit.records))
    columns[2].metric("For learning", sizes["train"], help="The training set: the model learns from these.")
    columns[3].metric("For checking", sizes["val"], help="The validation set: used to measure, never to learn.")
    columns[4].metric("Skipped", len(audit.skipped), help="Files that are not usable pictures, or that you left out.")
    columns[5].metric("Your changes", edits.count(), help="Pictures you left out or moved to another class.")
    findings.show_findings(path, audit)
    st.success(f"Ready: {len(audit.class_names)} classes. Have a look below, then choose how to learn on the Model page.")
    st.plotly_chart(counts_chart(audit), key="data_counts_chart", config={"displayModeBar": False})
    findings.show_duplicates(path, audit)
    ui_edits.show_changes(path)
    ui_edits.change_one_picture(path, audit)
    skipped = list(audit.skipped) + [tlcore.SkippedFile(n, r) for n, r in st.session_state.get("upload_skipped", [])]
    if skipped:
        with st.expander(f"{len(skipped)} file(s) skipped, and why"):
            st.dataframe([{"file": item.relative, "reason": item.reason} for item in skipped],
                         hide_index=True, key="data_skipped_table")
    show_classes(audit)
    if st.button("Check the folder again", key="data_recheck", help="After adding or removing pictures."):
        audit_cache.forget_audits()
        st.rerun()
    messages.link("pages/model.py", "Next: Model →")


def show_classes(audit) -> None:
    st.subheader("A few pictures of each class")
    st.caption("Check that each class folder really holds what its name says: the model learns whatever the folders show.")
    counts = audit.counts()
    for name in audit.class_names:
        records = [record for record in audit.records if record.label == name][:THUMBNAILS_PER_CLASS]
        st.markdown(f"**{tlcore.markdown_text(name)}** ({sum(counts[name].values())} pictures)")
        charts.show_thumbnails([record.path for record in records], size=96, captions=[
            lists.short_name(record.relative, 18) + (f" (from {record.relabeled_from})" if record.relabeled_from else "")
            for record in records])


with messages.shown_errors():
    use_demo()
    with st.expander("Use your own pictures", expanded=choices.dataset_path() is None):
        folder_tab, zip_tab, server_tab = st.tabs(["Upload a folder", "Upload a .zip", "Folder on this computer"])
        with folder_tab:
            upload_folder()
        with zip_tab:
            upload_zip()
        with server_tab:
            server_folder()

    path = choices.dataset_path()
    st.divider()
    if path is None:
        st.info("No pictures chosen yet: press **Use demo dataset** or bring your own above.")
        st.stop()
    st.subheader(f"Your pictures: {tlcore.markdown_text(words.dataset_name(path))}")
    shared = words.shared_folder(path)
    if shared:
        st.caption(f"In the shared folder {tlcore.markdown_text(shared)}")
    show_audit(path)
