"""Train: the settings, "Start training" (its own process), then live curves, progress and "Stop".

Training never runs inside this script: `tlcore.queue_training` puts the run in
the machine's fair line and starts its own process when a training slot is
free, returning its run folder at once. While it waits, the page says where it
stands in line and lets you take it out. The page keeps the run's name in the
address bar (`?run=...`) and polls the run folder every second, so the curves
keep coming after a page switch or a reload.
"""

import pathlib

import streamlit as st

import tlcore
from ui import audit_cache, charts, choices, gate, messages, run_picker, words
from ui import plans as ui_plans

LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
BATCH_SIZES = [8, 16, 32, 64, 128]
AUGMENT = {
    "none": "None: the pictures as they are",
    "flip": "Mirror: each picture as it is and mirrored left to right",
    "light": "Light: small flips, turns and zooms",
    "strong": "Strong: bigger changes, for few pictures",
}
POLL_SECONDS = 1.0
NAME_SHOWN = 80  # characters of a run name from the address bar that a message repeats

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Train: teach the model your classes")


# ----------------------------------------------------------------- what to train on


def require_data():
    path = choices.dataset_path()
    if path is None:
        st.info("First choose your pictures on the Data page (or press **Use demo dataset** there).")
        messages.link("pages/data.py", "Go to Data")
        st.stop()
    return path, audit_cache.audit(path)  # with the edits made on the Data and Evaluate pages


def describe_plan(path: str, audit, model: dict) -> None:
    if model["freeze"] == choices.FREEZE_BY_PRESET:
        learns = "the preset below chooses which blocks learn"
    elif model["freeze"] == "all":
        learns = "only the new last layer learns"
    else:
        learns = f"these blocks also learn: {model['freeze']}"
    network = ("the preset below picks it" if model["backbone"] == choices.BACKBONE_BY_PRESET
               else f"{words.backbone_title(model['backbone'])}, picked by hand")
    st.markdown(
        f"**Pictures:** {tlcore.markdown_text(words.dataset_name(path))}, {len(audit.class_names)} classes, "
        f"{len(audit.split_records('train'))} for learning and {len(audit.split_records('val'))} for checking.  \n"
        f"**Model:** {network}; {learns}. "
    )
    edits = choices.dataset_edits(path)
    if edits:
        st.caption(f"{words.count(len(edits.excluded_files), 'picture')} left out and "
                   f"{words.count(len(edits.relabels), 'picture')} moved to another class, as you chose on the Data "
                   "and Evaluate pages (your files stay where they are).")


def warn_missing_weights(backbone: str) -> None:
    offline = {row["name"]: row["available_offline"] for row in tlcore.list_backbones()}
    if not offline.get(backbone, True):
        st.warning("This pretrained model's weights are not on this computer: training will try to download them. "
                   "Without internet, import them on the Model page or pick a model marked ready.")


# ----------------------------------------------------------------- settings


def settings(path: str, audit, model: dict):
    """The preset, the time budget, then the expert widgets; returns (TrainConfig, its estimate), or (None, None)."""
    saved = choices.train_choice()
    speeds = {}  # this computer's measured speeds, read once: every plan and estimate on the page uses them
    try:
        preset, plans = choose_preset(path, audit, model, saved, speeds)
        time_budget(plans[preset])
        chosen = plans[preset].config
        with st.expander("Details for experts: every setting the preset chose, to change by hand"):
            widgets = {**step_settings(chosen, preset), **schedule_settings(chosen, audit, model, preset)}
        overrides = {name: value for name, value in widgets.items() if value != getattr(chosen, name)}
        choices.set_train_choice({"preset": preset})
        planned = ui_plans.plan(path, audit, model, preset, overrides, speeds) if overrides else plans[preset]
        config = planned.config
    except tlcore.TlcoreError as error:
        st.error(tlcore.markdown_text(error))
        return None, None
    for note in planned.notes:
        st.info(note)
    if planned.choice is not None:
        st.markdown(f"**Pretrained model:** {planned.choice.describe()}")
    warn_missing_weights(config.backbone)
    st.markdown(f"**What it will do:** {tlcore.describe_choice(config)}." +
                (f" Changed by hand: {', '.join(sorted(overrides))}." if overrides else ""))
    speed = speeds.get(config.backbone) or tlcore.measured_speed(config.backbone, config.resolved_image_size)
    return config, tlcore.estimate_run(config, audit, tlcore.kept_for_run(config, audit), speed=speed)


def time_budget(planned) -> None:
    """The budget the preset chose the network within: shown, and changeable."""
    choice = planned.choice
    if choice is None:
        return
    shown = max(5, int(round(choice.budget_s)))
    seconds = st.number_input(
        f"Time budget in seconds (now up to about {tlcore.format_duration(choice.budget_s)})", min_value=5,
        max_value=24 * 3600, value=shown, step=10, key="train_time_budget",
        help="The preset picks the strongest pretrained model whose whole run fits this time on this computer. "
        "By default it is what the plain tutorial recipe (the small model, 10 epochs) would take on your pictures, "
        "so you never wait longer than the tutorial would make you wait.",
    )
    if seconds != shown:
        choices.set_time_budget(float(seconds))
        st.rerun()
    if choice.budget_is_default:
        st.caption("The default budget: what the plain tutorial recipe would take on these pictures on this computer.")
    elif st.button("Back to the default budget", key="train_budget_default"):
        choices.set_time_budget(None)
        st.session_state.pop("train_time_budget", None)
        st.rerun()


def choose_preset(path: str, audit, model: dict, saved: dict, speeds: dict):
    """The two presets in plain words, each with this computer's time estimate; (the preset picked, each one's plan)."""
    presets = tlcore.PRESET_INFO
    plans, times = {}, {}
    for name in presets:
        plans[name] = ui_plans.plan(path, audit, model, name, {}, speeds)
        config = plans[name].config
        speed = speeds.get(config.backbone) or tlcore.measured_speed(config.backbone, config.resolved_image_size)
        times[name] = tlcore.estimate_run(config, audit, tlcore.kept_for_run(config, audit), speed=speed)
    remembered = saved.get("preset", tlcore.DEFAULT_PRESET)
    names = list(presets)
    preset = st.radio(
        "How should it learn?", names, index=names.index(remembered) if remembered in names else 0,
        format_func=lambda name: f"{presets[name].title}: {presets[name].purpose} "
                                 f"(about {tlcore.format_duration(times[name].total_s)} on this computer)",
        key="train_preset",
    )
    return preset, plans


def step_settings(chosen, preset: str) -> dict:
    """How long and in which steps it learns: epochs, learning rate, batch size, augmentation."""
    left, middle, right = st.columns(3)
    epochs = left.number_input(
        "Epochs", 1, 500, int(chosen.epochs), key=f"train_epochs_{preset}",
        help="One epoch is one pass over all the training pictures. With early stopping on, training ends by "
        "itself once it stops improving.",
    )
    learning_rate = middle.select_slider(
        "Learning rate", _with(LEARNING_RATES, chosen.learning_rate), value=chosen.learning_rate,
        format_func=lambda value: f"{value:g}", key=f"train_learning_rate_{preset}",
        help="How big a step the model takes each time it corrects itself. Too big and it jumps around; too small "
        "and it learns slowly. 0.001 suits the new last layer; blocks that learn get a lower one (below).",
    )
    batch_size = right.select_slider(
        "Batch size", _with(BATCH_SIZES, chosen.batch_size), value=chosen.batch_size, key=f"train_batch_size_{preset}",
        help="Pictures looked at before each correction. Lower it if the computer runs out of memory.",
    )
    augment = st.radio(
        "Augmentation", list(AUGMENT), index=list(AUGMENT).index(chosen.augment), format_func=AUGMENT.get,
        horizontal=True, key=f"train_augment_{preset}",
        help="Changed copies of the training pictures, so the model learns the thing and not the exact picture. "
        "Mirroring helped on every photo set it was measured on; turns and zooms did not.",
    )
    return {"epochs": int(epochs), "learning_rate": learning_rate, "batch_size": batch_size, "augment": augment}


def schedule_settings(chosen, audit, model: dict, preset: str) -> dict:
    """When it stops, class balance, and the two-phase schedule for fine-tuning."""
    left, right = st.columns(2)
    early = left.toggle("Stop by itself when it stops improving (early stopping)",
                        value=chosen.early_stopping_patience > 0, key=f"train_early_stopping_{preset}",
                        help="Watches the checking pictures. Off, it trains every epoch and keeps the best one.")
    patience = left.number_input("…after this many epochs without improvement", 1, 50,
                                 int(chosen.early_stopping_patience or 5), key=f"train_patience_{preset}", disabled=not early)
    class_weights = right.toggle("Balance the classes", value=chosen.class_weights, key=f"train_class_weights_{preset}",
                                 help="Counts the pictures of small classes more, when some classes have far fewer pictures.")
    two_phase = right.toggle(
        "Two phases: first the new layer alone, then the unfrozen blocks too", value=chosen.two_phase,
        key=f"train_two_phase_{preset}", disabled=chosen.freeze.strip() == "all",
        help="Safer fine-tuning: the new layer learns first, so the unfrozen blocks are not disturbed by its early "
        "big mistakes. Needs some blocks that learn (the preset's, or those picked on the Model page).",
    ) and chosen.freeze.strip() != "all"
    values = {"early_stopping_patience": int(patience) if early else 0, "class_weights": class_weights,
              "two_phase": two_phase}
    if two_phase:
        values["head_epochs"] = int(right.number_input("Epochs of the first phase", 1, 100, int(chosen.head_epochs),
                                                       key=f"train_head_epochs_{preset}"))
        values["fine_tune_learning_rate"] = right.select_slider(
            "Learning rate of the second phase", _with(LEARNING_RATES, chosen.fine_tune_learning_rate),
            value=chosen.fine_tune_learning_rate, format_func=lambda value: f"{value:g}", key=f"train_fine_tune_rate_{preset}")
    return values


def _with(options: list, value) -> list:
    """The slider's options, with the preset's own value among them."""
    return sorted(set(options) | {value})


# ----------------------------------------------------------------- starting


@messages.shown_errors()  # the message where the button is
def start(config, estimate) -> None:
    try:
        run_dir = tlcore.queue_training(config, estimated_s=estimate.total_s if estimate else None)
    except tlcore.RunBusyError as error:
        st.error(f"Only one training can run at a time on this computer: {tlcore.markdown_text(error)}")
        running = run_picker.training_run()
        if running is not None and st.button("Watch that training", key="train_watch_busy"):
            run_picker.attach_run(running)
            st.rerun()
        st.stop()
    run_picker.attach_run(run_dir)
    st.rerun()


# ----------------------------------------------------------------- watching a run


def attached_run() -> pathlib.Path | None:
    """The run in the address bar, else this session's, else the one training on this machine."""
    name = st.query_params.get(run_picker.RUN_PARAM)
    if name:
        run_dir = tlcore.find_run(name)
        if run_dir is not None:
            run_picker.attach_run(run_dir)
            return run_dir
        shown = name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN] + "…"
        st.warning(f"There is no training called {tlcore.markdown_text(repr(shown))} (it may have been deleted).")
        del st.query_params[run_picker.RUN_PARAM]
    run_dir = tlcore.find_run(st.session_state.get("run_name"))
    if run_dir is None:
        run_dir = run_picker.training_run()
    if run_dir is not None:
        run_picker.attach_run(run_dir)
    return run_dir


def progress(status: dict, rows: list[dict]) -> tuple[float, str]:
    """How far the run is (0..1) and a line saying so in words."""
    if status.get("state") == "waiting":
        return 0.0, "Waiting in line for the computer…"
    if status.get("state") == "queued":
        return 0.0, "Starting the training process…"
    last = rows[-1] if rows else {}
    if last.get("phase") == "features" and last.get("type") == "progress":
        done, total = last.get("done", 0), max(1, last.get("total", 1))
        which = {"train": "training", "val": "checking", "test": "test"}.get(last.get("split"), "")
        fraction = int(status.get("epoch") or 0) / max(1, int(status.get("epochs") or 1))
        return fraction, f"Getting ready: the pretrained model looks at each {which} picture once ({done} of {total})."
    epochs = max(1, int(status.get("epochs") or 1))
    epoch = int(status.get("epoch") or 0)
    batch, batches = int(status.get("batch") or 0), max(1, int(status.get("batches") or 1))
    if last.get("type") == "progress" and batch:
        fraction = ((epoch - 1) + batch / batches) / epochs
        text = f"Epoch {epoch} of {epochs}, batch {batch} of {batches}"
    elif epoch:
        fraction, text = epoch / epochs, f"Finished epoch {epoch} of {epochs}"
    else:
        message = str(status.get("message") or "preparing…")
        return 0.0, tlcore.markdown_text(message[:1].upper() + message[1:])
    eta = status.get("eta_s")
    if eta is not None:
        text += f" · about {tlcore.format_duration(eta)} left at most"
    return min(1.0, max(0.0, fraction)), text


@st.fragment(run_every=POLL_SECONDS)
@messages.shown_errors()  # a fragment reruns on its own, outside the page's
def live_panel(run_dir: pathlib.Path) -> None:
    tlcore.dispatch_queue()  # a run whose turn came starts now, even if every other page is closed
    status = tlcore.read_status(run_dir)
    if status.get("state") not in tlcore.ACTIVE_STATES:
        st.rerun()  # the whole page: show the finished run
    if status.get("state") == "waiting":
        waiting_panel(run_dir)
        return
    rows = tlcore.read_metrics(run_dir)
    fraction, text = progress(status, rows)
    st.progress(fraction, text=text)
    if tlcore.stop_requested(run_dir):
        st.info("Stopping at the next step; the best model so far is kept.")
    else:  # asked in the click's callback, so the rerun the click makes already says it is stopping
        st.button("Stop", key="train_stop", help="Ends training soon; the best model so far is kept and can be used.",
                  on_click=messages.shown_errors()(tlcore.request_stop), args=(run_dir,))
    epochs = [row for row in rows if row.get("type") == "epoch"]
    if epochs:
        charts.show_curves(epochs, key="train_live", planned_epochs=status.get("epochs"))
    else:
        st.caption("The curves appear after the first epoch.")


def waiting_panel(run_dir: pathlib.Path) -> None:
    """Where the run stands in line, and taking it out."""
    place = tlcore.queue_place(run_dir)
    st.progress(0.0, text="Waiting in line for the computer…")
    if place is not None:
        st.info(f"Your training is waiting: **{place.describe()}** The computer trains one run at a time "
                "(or a few), in the order they were started; yours starts by itself.")
    st.button("Take it out of the line", key="train_cancel", help="Your settings stay; you can start it again later.",
              on_click=messages.shown_errors()(take_out_of_line), args=(run_dir,))


def take_out_of_line(run_dir: pathlib.Path) -> None:
    """The button's callback: a new run leaves no folder behind, so the page forgets it; a continued one stays."""
    tlcore.cancel_queued(run_dir)
    if not run_dir.exists():
        run_picker.forget_run(run_dir.name)


def finished_panel(run_dir: pathlib.Path, status: dict) -> None:
    summary = tlcore.run_summary(run_dir)
    best, state = summary["result_val_accuracy"], status.get("state")
    score = f" Best result: {words.percent(best)} of the checking pictures right." if best is not None else ""
    message = tlcore.markdown_text(status.get("message", ""))  # it may name a class or a file
    if state == "completed":
        st.success(f"Training finished after {summary['epochs_run']} epoch(s).{score}")
    elif state == "stopped":
        st.info(f"Training stopped after {summary['epochs_run']} epoch(s): {message}{score}")
    elif state == "failed":
        st.error(f"Training failed: {message}")
    else:
        st.warning(f"Training {words.state_word(state)}: {message}")
    epochs = tlcore.epoch_rows(run_dir)
    if epochs:
        charts.show_curves(epochs, key="train_final")
    if summary["has_model"]:
        left, right = st.columns(2)
        with left:
            messages.link("pages/evaluate.py", "Next: see its mistakes on Evaluate →")
        with right:
            messages.link("pages/predict.py", "Try it on new pictures on Predict →")
        continue_training(run_dir)


def continue_training(run_dir: pathlib.Path) -> None:
    """Resume a finished, stopped or interrupted run from its best model."""
    with st.expander("Continue this training"):
        st.caption("Trains more epochs starting from the best model so far; the curves continue where they ended. "
                   "The saved model is only replaced by a better one.")
        extra = st.number_input("More epochs", 1, 500, 5, key="train_resume_epochs")
        if st.button("Continue training", key="train_resume"):
            with messages.shown_errors():  # the message where the button is
                tlcore.queue_training(None, resume_run=run_dir, resume_epochs=int(extra))
            st.rerun()


def run_details(run_dir: pathlib.Path, status: dict) -> None:
    with st.expander("Details for experts"):
        # The folder's path is for whoever runs the computer; in a classroom, its name is what the student can use.
        folder = run_dir.name if tlcore.classroom_mode() else str(run_dir)
        st.markdown(f"Run folder: {tlcore.markdown_text(folder)}  \n"
                    f"Feature cache: {tlcore.markdown_text(status.get('feature_cache', 'not decided yet'))}")
        epochs = tlcore.epoch_rows(run_dir)
        if epochs:
            st.dataframe(
                [{k: row.get(k) for k in ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_s")}
                 for row in epochs], hide_index=True, key="train_epoch_table",
            )
        st.json(tlcore.run_config(run_dir), expanded=False)


def show_run(run_dir: pathlib.Path) -> None:
    status = tlcore.read_status(run_dir)
    summary = tlcore.run_summary(run_dir)
    if summary["damaged"]:
        st.warning(f"Training {run_dir.name} is damaged: {summary['damaged']}. Delete it on the Export page "
                   "(All trainings), or start a new training below.")
        return
    st.subheader(f"Training {tlcore.markdown_text(run_picker.describe_run(summary, with_outcome=False))}")
    st.caption("Blue: the pictures it learns from. Orange: the pictures kept aside for checking. When orange stops "
               "getting better while blue still does, the model has started to memorise its training pictures.")
    decision = (status.get("second_phase") or {}).get("words")
    if decision:  # whether the top blocks learned too, decided on training pictures
        st.info(decision[:1].upper() + decision[1:])
    if status.get("state") in tlcore.ACTIVE_STATES:
        live_panel(run_dir)
    else:
        finished_panel(run_dir, status)
    run_details(run_dir, status)


with messages.shown_errors():
    run_dir = attached_run()
    if run_dir is not None:
        with messages.damage_shown():
            show_run(run_dir)
        st.divider()
    with st.expander("Settings for a new training") if run_dir is not None else st.container():
        path, audit = require_data()
        model = choices.model_choice()
        describe_plan(path, audit, model)
        messages.link("pages/model.py", "Change the model")
        config, estimate = settings(path, audit, model)
        if config is not None:
            st.caption(estimate.describe())
            tlcore.ensure_spare()  # a training process gets TensorFlow ready now, so Start begins at once
        if st.button("Start training", key="train_start", type="primary", disabled=config is None):
            start(config, estimate)
