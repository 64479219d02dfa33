"""The run a preset plans from the Model page's choices: the one call both the Model and the Train page make.

The config itself is `tlcore.build_config`'s (the same function `tlcore train`
calls); this turns the Model page's choices and the Train page's expert
widgets into the settings set by hand, and measures, in a process of its own
and with a spinner, a network this computer has not measured yet.
"""

from __future__ import annotations

import streamlit as st

import tlcore
from ui import choices

MEASURED_KEY = "plans_measured"  # backbones measured in this session (a failed probe is not tried again on every rerun)


def given_settings(path: str, audit, model: dict, overrides: dict) -> dict:
    """The settings the user set by hand: the Model page's, the data's edits, and the expert widgets' changes."""
    given = {
        "image_size": model["image_size"], "dropout": model["dropout"], "label_smoothing": model["label_smoothing"],
        "val_split": choices.val_split(), "excluded_files": tuple(choices.excluded_files(path)),
        "relabels": choices.dataset_edits(path).relabels,
    }
    if model["backbone"] != choices.BACKBONE_BY_PRESET:
        given["backbone"] = model["backbone"]
    if model["freeze"] != choices.FREEZE_BY_PRESET:
        given["freeze"] = model["freeze"]
    return {**given, **overrides}


def plan(path: str, audit, model: dict, preset: str, overrides: dict | None = None, speeds: dict | None = None):
    """The `PlannedRun` for this preset: its config, and how it chose the network."""
    return tlcore.build_config(
        path, preset, audit, given_settings(path, audit, model, overrides or {}), budget_s=choices.time_budget(),
        speeds=speeds, allowed_downloads=choices.allowed_downloads(), measure=_measure_with_spinner(audit),
    )


def _measure_with_spinner(audit):
    probe = tlcore.process_prober(audit)

    def measure(backbone: str, image_size: int) -> float | None:
        tried = st.session_state.setdefault(MEASURED_KEY, set())
        if (backbone, image_size) in tried:
            return None  # tried in this session and it failed: the first guess stands in
        tried.add((backbone, image_size))
        title = tlcore.get_backbone(backbone).title
        with st.spinner(f"Measuring how fast {title} runs on this computer, on a few of your pictures (once)…"):
            return probe(backbone, image_size)

    return measure
