"""A run's model, loaded once per model file and kept for every session of this server (this imports TensorFlow)."""

from __future__ import annotations

import pathlib

import streamlit as st

import tlcore


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _load(run_dir: str, model_mtime: float):
    return tlcore.load_run_model(run_dir)


def stamp(run_dir) -> float:
    """When the run's model file was last written (0 when there is none): a cache key part for results of the model."""
    model_file = pathlib.Path(run_dir) / tlcore.MODEL_FILE
    return model_file.stat().st_mtime if model_file.exists() else 0.0


def loaded(run_dir) -> tuple:
    """(model, labels) of a run; a retrained model (a new model.keras) is loaded afresh.

    Raises:
        tlcore.TlcoreError: the run has no usable model (the message says why).
    """
    return _load(str(run_dir), stamp(run_dir))
