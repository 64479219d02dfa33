"""Model: pick the pretrained model (backbone), the new last layer, and what may change (freezing)."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import tlcore
from ui import audit_cache, charts, choices, gate, messages
from ui import plans as ui_plans

PRESETS = {
    "auto": "Let the training preset choose (recommended): it picks from the number of your pictures",
    "all": "Only the new last layer learns (feature extraction): fastest, best for small datasets",
    "top": "The new last layer and the top blocks learn (fine-tuning)",
    "none": "Everything learns (full fine-tuning): slowest, needs many pictures",
    "custom": "Let me pick the blocks",
}

BLOCK_COLUMNS = {
    "learns": st.column_config.CheckboxColumn(help="Ticked: this block may change while learning (unfrozen)."),
    "parameters": st.column_config.NumberColumn(format="localized"),
}

messages.open_in_app_menu()
gate.require_sign_in()  # classroom mode: your own space, after signing in
st.title("Model: start from a model that already knows how to see")
st.markdown(
    "Nobody teaches a computer to see from scratch with a few pictures. The app starts from a **pretrained model** "
    "(experts say *backbone*) that learned edges, textures and shapes from 1.2 million photos (ImageNet), "
    "adds a new last layer for your classes, and trains that. Smaller models learn faster; bigger ones can be more accurate."
)

with messages.shown_errors():
    choice = choices.model_choice()
    rows = tlcore.list_backbones()
    by_name = {row["name"]: row for row in rows}


def preset_pick():
    """What the best-quality preset would pick for the chosen pictures (None without pictures), measuring first."""
    path = choices.dataset_path()
    if not path:
        return None
    try:
        audit = audit_cache.audit(path)
        return ui_plans.plan(path, audit, {**choice, "backbone": choices.BACKBONE_BY_PRESET}, tlcore.DEFAULT_PRESET).choice
    except tlcore.TlcoreError as error:
        st.caption(f"Which model the preset picks shows once your pictures can be read: {error}")
        return None


def backbone_table(pick) -> None:
    options = {option.name: option for option in pick.options} if pick else {}
    table = pd.DataFrame(
        [
            {
                "model": row["title"],
                "speed": row["speed_hint"],
                "pictures per second here": _rate(options.get(row["name"]), row["name"]),
                "size (million parameters)": round(row["params"] / 1e6, 1),
                "ImageNet accuracy": row["imagenet_top1"] / 100,
                "picture size (pixels)": row["input_size"],
                "ready on this computer": bool(row["available_offline"]),
            }
            for row in rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        key="model_backbone_table",
        height="content",
        column_config={
            "ready on this computer": st.column_config.CheckboxColumn(
                help="Ticked: its pretrained weights are on this computer. Otherwise training downloads them."
            ),
            "pictures per second here": st.column_config.TextColumn(
                help="How many of your pictures this computer runs through the frozen model each second, as measured "
                "here (a training of it, or a quick measurement on a few of your pictures). Empty: not measured yet."
            ),
            "ImageNet accuracy": st.column_config.ProgressColumn(
                format="percent", min_value=0, max_value=1,
                help="How often it named the right one of 1000 everyday things (ImageNet top-1).",
            ),
            "size (million parameters)": st.column_config.NumberColumn(
                help="Parameters are the numbers a model learns; more means slower, and often more accurate."
            ),
        },
    )


def _rate(option, name: str) -> str:
    if option is not None and option.measured:
        return f"{option.images_per_s:,.0f}"
    measured = tlcore.measured_speed(name).images_per_s
    return f"{measured:,.0f}" if measured else ""


def explain_pick(pick) -> None:
    """Which model the preset would pick and why; a stronger one that needs a download, with its size and a yes."""
    if pick is None:
        st.caption("Choose your pictures on the Data page to see which model the preset picks for them.")
        return
    st.markdown(f"**The best-quality preset would pick {pick.describe()}** "
                f"(time budget: about {tlcore.format_duration(pick.budget_s)}; change it on the Train page).")
    if pick.note:
        st.info(pick.note)
    offer = pick.offer
    if offer is not None:
        st.info(f"{offer.title} would be stronger and would finish in about {tlcore.format_duration(offer.estimate_s)} "
                f"here, but its weights are not on this computer: a download of about {offer.download_mb:.0f} MB.")
        if st.button(f"Download {offer.title} when training starts (about {offer.download_mb:.0f} MB)",
                     key="model_allow_download"):
            choices.allow_download(offer.name)
            st.rerun()


def pick_backbone(pick) -> str:
    names = [choices.BACKBONE_BY_PRESET] + [row["name"] for row in rows]

    def label(name: str) -> str:
        if name == choices.BACKBONE_BY_PRESET:
            picked = f": now {by_name[pick.backbone]['title']}" if pick else ""
            return f"Let the preset pick (recommended){picked}"
        return f"{by_name[name]['title']} — {by_name[name]['speed_hint']}" + (
            "" if by_name[name]["available_offline"] else " (needs download)")

    name = st.selectbox(
        "Pretrained model",
        names,
        index=names.index(choice["backbone"]),
        key="model_backbone",
        format_func=label,
        help="Let the preset pick: the strongest model that finishes within the time budget on this computer.",
    )
    st.caption("Not sure? Let the preset pick: it takes the strongest model whose run fits the time the plain tutorial "
               "recipe would take on your pictures here. A model picked by hand is always used as it is.")
    if "model_imported" in st.session_state:
        st.success(tlcore.markdown_text(st.session_state.pop("model_imported")))  # it names the uploaded file
    if name != choices.BACKBONE_BY_PRESET and not by_name[name]["available_offline"]:
        offer_weights_import(name)
    return name


@messages.shown_errors()  # the message where the button is
def offer_weights_import(name: str) -> None:
    row = by_name[name]
    st.warning(
        f"The pretrained knowledge (weights) of {row['title']} is not on this computer yet. Training downloads it "
        f"from the internet ({row['weights_file']}). Without internet, get that file elsewhere and import it here."
    )
    file = st.file_uploader("Import a weights file (.h5)", type=["h5"], key="model_weights_upload")
    for_everyone = tlcore.may_install_weights_for_everyone() and st.checkbox(
        "Install for everyone on this computer", key="model_weights_for_everyone",
        help="Ticked: every account's runs use this file. Only a file Keras publishes a hash for (a verified one) is "
             "installed for everyone; any other stays for your own runs.")
    if file is not None and st.button("Import weights", key="model_import_weights"):
        with st.spinner("Checking the weights file…"):
            imported = tlcore.import_uploaded_weights(file.name, file, for_everyone=for_everyone)
        st.session_state["model_imported"] = f"Imported {file.name}: {row['title']} is ready ({imported.note})."
        st.rerun()


def head_options(backbone: str) -> dict:
    st.subheader("The new last layer")
    st.markdown(
        "The new last layer turns what the pretrained model sees into your classes. *Dropout* makes it ignore a random "
        "part of that while learning, so it cannot just memorise a small set of pictures."
    )
    dropout = st.slider("Dropout", 0.0, 0.7, float(choice["dropout"]), 0.05, key="model_dropout",
                        help="0.2 is a good default; raise it if the model does much better on training than on validation pictures.")
    with st.expander("More options for experts"):
        smoothing = st.slider("Label smoothing", 0.0, 0.3, float(choice["label_smoothing"]), 0.05, key="model_label_smoothing",
                              help="Softens the targets a little; helps when some pictures are in the wrong folder.")
        native = by_name[backbone]["input_size"]
        sizes = sorted({size for size in (96, 128, 160, 192, 224, native) if size <= native})
        current = choice["image_size"] or native
        size = st.select_slider("Picture size (pixels)", sizes, value=current if current in sizes else native,
                                key="model_image_size",
                                help=f"Pictures are resized to this square size. {native} is what this model was trained on; smaller is faster.")
    return {"dropout": dropout, "label_smoothing": smoothing, "image_size": 0 if size == native else size}


def remembered_freeze(backbone: str, names: list[str]) -> tuple[str, list[str]]:
    """The remembered freeze option for this backbone and its learning blocks, in order.

    A remembered option this backbone cannot take (a block name it does not
    have) starts over from "all", and says so.
    """
    same = choice["backbone"] in (backbone, choices.BACKBONE_BY_PRESET)
    remembered = choice["freeze"] if same else choices.FREEZE_BY_PRESET
    if remembered == choices.FREEZE_BY_PRESET:
        return remembered, []
    try:
        trainable = tlcore.parse_freeze(remembered, names)
    except tlcore.InputError:
        st.info(f"The blocks chosen before ({tlcore.markdown_text(repr(remembered))}) are not blocks of {by_name[backbone]['title']}, "
                "so only the new last layer learns for now; pick again below.")
        return "all", []
    return remembered, [name for name in names if name in trainable]


def preset_of(freeze: str) -> str:
    if freeze in ("all", "none", choices.FREEZE_BY_PRESET):
        return freeze
    return "top" if freeze.startswith("top:") else "custom"


def freezing_map(backbone: str, by_preset: bool = False) -> str:
    st.subheader("What may change while learning (freezing)")
    st.markdown(
        "The pretrained model is a stack of **blocks**: the first ones see edges and colours, the last ones see whole "
        "shapes and objects. A **frozen** block keeps what it knows. Not sure? Let the training preset choose: with a "
        "hundred pictures or more it lets the top two blocks learn too, gently, after the new last layer, for as many "
        "epochs as fit the time budget (none, if even a few do not fit). Let more blocks learn for pictures unlike "
        "everyday photos (drawings, X-rays, microscope images), with a small learning rate."
    )
    blocks = tlcore.block_table(backbone)
    names = [block["name"] for block in blocks]
    remembered, remembered_blocks = remembered_freeze(backbone, names)
    offered = [name for name in PRESETS if not (by_preset and name == "custom")]
    current = preset_of(remembered)
    preset = st.radio("How much may learn?", offered, index=offered.index(current) if current in offered else 0,
                      format_func=PRESETS.get, key="model_freeze_preset")
    if by_preset:
        st.caption("To pick blocks one by one, pick the pretrained model by hand above (block names differ between models).")
    if preset == "top":
        start = len(remembered_blocks) if preset_of(remembered) == "top" else 2
        count = st.slider("How many top blocks learn", 1, len(names), min(max(start, 1), len(names)),
                          key="model_top_blocks", help="Counted from the top (the output end) of the model.")
        trainable = names[len(names) - count:]
    elif preset == "auto":
        st.caption("The Train page's preset decides: with a hundred pictures or more, the best-quality preset lets the "
                   "top two blocks learn too, gently, after the new last layer, within the time budget; the quick check "
                   "keeps them all frozen.")
        return choices.FREEZE_BY_PRESET
    elif preset == "all":
        trainable = []
    elif preset == "none":
        trainable = list(names)
    else:
        base = st.session_state.get("model_custom_base")
        trainable = base["blocks"] if base and base["backbone"] == backbone else remembered_blocks
    st.session_state["model_custom_base"] = {"backbone": backbone, "blocks": trainable}
    table = pd.DataFrame(
        {
            "learns": [name in trainable for name in names],
            "block": names,
            "layers": [block["layers"] for block in blocks],
            "parameters": [block["params"] for block in blocks],
        }
    )
    if preset == "custom":
        st.caption("Tick the blocks that may learn. The list goes from the input (top of the table) to the output.")
        edited = st.data_editor(table, hide_index=True, disabled=["block", "layers", "parameters"],
                                key=f"model_blocks_{backbone}", height=300, column_config=BLOCK_COLUMNS)
        trainable = [name for name, learns in zip(edited["block"], edited["learns"], strict=True) if learns]
    else:
        st.dataframe(table, hide_index=True, key="model_blocks_view", height=300, column_config=BLOCK_COLUMNS)
    return tlcore.freeze_option(trainable, names)


def show_counts(backbone: str, freeze: str) -> None:
    if freeze == choices.FREEZE_BY_PRESET:
        return
    classes = _class_count()
    summary = tlcore.trainable_summary(backbone, freeze, classes)
    trainable, frozen = summary["trainable_params"], summary["frozen_params"]
    columns = st.columns(3)
    columns[0].metric("Numbers that learn", f"{trainable:,}",
                      help="Trainable parameters, including the new last layer for your classes.")
    columns[1].metric("Numbers kept as they are", f"{frozen:,}", help="Frozen parameters.")
    columns[2].metric("Share that learns", f"{trainable / (trainable + frozen):.1%}")
    figure = go.Figure()
    figure.add_trace(go.Bar(y=["parameters"], x=[trainable], name="learn", orientation="h", marker_color=charts.VAL_COLOUR))
    figure.add_trace(go.Bar(y=["parameters"], x=[frozen], name="frozen", orientation="h", marker_color="#c7c7c7"))
    figure.update_layout(barmode="stack", height=140, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         legend={"orientation": "h"}, xaxis_title="parameters")
    st.plotly_chart(figure, key="model_counts_chart", config={"displayModeBar": False})
    if freeze == "all":
        st.caption("With everything frozen, the app shows each picture to the pretrained model once and reuses what it "
                   "saw, so each epoch takes a moment (a feature cache).")
    st.caption(f"Counted for {classes} classes" + ("" if choices.dataset_path() else " (choose your pictures for the real number)") + ".")


def _class_count() -> int:
    path = choices.dataset_path()
    if path:
        try:
            return len(audit_cache.audit(path).class_names)
        except tlcore.TlcoreError:
            pass
    return 2


with messages.shown_errors():
    pick = preset_pick()
    backbone_table(pick)
    explain_pick(pick)
    chosen = pick_backbone(pick)
    by_preset = chosen == choices.BACKBONE_BY_PRESET
    backbone = (pick.backbone if pick else tlcore.DEFAULT_BACKBONE) if by_preset else chosen
    head = head_options(backbone)
    freeze = freezing_map(backbone, by_preset)
    show_counts(backbone, freeze)
    choices.set_model_choice({"backbone": chosen, "freeze": freeze, **head})
    messages.link("pages/train.py", "Next: Train →")
