"""The app's entry point: the menu of pages and the landing page.

Run it with `streamlit run app.py`. Each step of the journey is a page in
pages/; this file only lists them and says where things stand. The helpers the
pages share are the `ui` package beside this file: Streamlit puts this file's
folder on `sys.path`, so `import ui` finds it.
"""

import streamlit as st

import tlcore
from ui import audit_cache, choices, gate, messages, run_picker, words

STEPS = (
    ("pages/data.py", "Data", "bring your pictures: one folder per kind of thing (or try the demo shapes)."),
    ("pages/model.py", "Model", "pick a pretrained model, which already knows how to see, and how much of it may change."),
    ("pages/train.py", "Train", "teach it your classes and watch it learn, live."),
    ("pages/evaluate.py", "Evaluate", "see how often it is right, and which pictures fool it."),
    ("pages/predict.py", "Predict", "try it on new pictures or your camera."),
    ("pages/export.py", "Export", "download the model for a phone, a Raspberry Pi or your own Python code."),
)
# Always one of the pages, so that its address opens it (with the sign-in form first) instead of Streamlit's
# "page not found" box over the form; in the menu only for a teacher's account, and the page itself refuses others.
TEACHER_PAGE = ("pages/teacher.py", "Teacher")


@messages.shown_errors()
def landing() -> None:
    gate.require_sign_in()  # classroom mode: nothing but the sign-in form until you are signed in
    st.title("Teach a computer to recognise your pictures")
    st.markdown(
        "Give the app a few dozen pictures of each kind of thing you want recognised, sorted into one folder per kind. "
        "It starts from a model that has already learned to see from over a million photos, and teaches it **your** "
        "kinds in minutes, even on a laptop. Then you can test it, see its mistakes, and take it with you."
    )
    if st.button("Use demo dataset", key="home_use_demo", type="primary",
                 help="160 drawn pictures of circles, squares, triangles and stars, made on this computer."):
        choices.choose_demo_dataset()
        messages.go_to("pages/data.py")

    st.subheader("The steps")
    for number, (page, label, text) in enumerate(STEPS, start=1):
        columns = st.columns([1, 6], vertical_alignment="center")
        with columns[0]:
            messages.link(page, f"{number}. {label}")
        columns[1].write(text)

    st.subheader("Where you are")
    show_where_things_stand()


def show_where_things_stand() -> None:
    data = choices.dataset_path()
    if data:
        st.markdown(f"**Pictures:** {tlcore.markdown_text(words.dataset_name(data))}")
        try:
            audit = audit_cache.audit(data)
            st.caption(f"{len(audit.class_names)} classes ({tlcore.markdown_text(', '.join(audit.class_names))}), "
                       f"{len(audit.records)} pictures.")
        except tlcore.TlcoreError as error:
            st.caption(f"There is a problem with these pictures: {tlcore.markdown_text(error)}")
    else:
        st.markdown("**Pictures:** not chosen yet. Start on the Data page, or press *Use demo dataset*.")
    choice = choices.model_choice()
    st.markdown(f"**Model:** {words.backbone_title(choice['backbone'])}, "
                + ("only its new last layer learns." if choice["freeze"] == "all" else f"learning blocks: {choice['freeze']}."))
    running = run_picker.training_run()
    if running is not None:
        status = tlcore.read_status(running)
        place = tlcore.queue_place(running) if status.get("state") == "waiting" else None
        st.markdown(f"**Training now:** {tlcore.markdown_text(place.describe() if place else status.get('message', '') + '.')}")
        messages.link("pages/train.py", "Watch the training")
        return
    run_dir = run_picker.remembered_run()
    if run_dir is None:
        st.markdown("**Training:** nothing trained yet.")
        return
    summary = tlcore.run_summary(run_dir)
    st.markdown(f"**Last training:** {tlcore.markdown_text(run_picker.describe_run(summary))}.")


st.set_page_config(page_title="Picture trainer", layout="wide")
pages = [
    st.Page(landing, title="Start", default=True),
    *[st.Page(page, title=label) for page, label, _ in STEPS],
    st.Page(TEACHER_PAGE[0], title=TEACHER_PAGE[1], visibility="visible" if gate.is_teacher() else "hidden"),
]
gate.account_menu()
with messages.shown_errors():  # each page shows its own errors; this catches what a page runs outside that
    tlcore.dispatch_queue()  # a restarted server starts what waited in line; never raises
    st.navigation(pages, position=gate.menu_position()).run()  # every page asks for sign-in first
