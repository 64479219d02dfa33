"""tlcore: fine-tune a pretrained image classifier on a folder of pictures.

Importing the package is cheap: TensorFlow and Keras load only when a function
that needs them runs, so the Streamlit server and quick CLI commands stay light.

Example:
    import tlcore
    config = tlcore.TrainConfig(data="photos/")
    result = tlcore.train(config)            # in this process
    run_dir = tlcore.start_training(config)  # in its own process (the app)
    tlcore.read_status(run_dir)["state"]
"""

import importlib as _importlib
import os as _os

# TensorFlow's C++ start-up chatter would bury the messages meant for the user.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

# Public name -> module that defines it; imported on first use.
_PUBLIC = {
    "TrainConfig": "tlcore.config",
    "TlcoreError": "tlcore.errors",
    "InputError": "tlcore.errors",
    "WeightsUnavailableError": "tlcore.errors",
    "RunBusyError": "tlcore.errors",
    "TrainingFailedError": "tlcore.errors",
    "audit_dataset": "tlcore.data",
    "DatasetAudit": "tlcore.data",
    "list_backbones": "tlcore.backbones",
    "get_backbone": "tlcore.backbones",
    "import_weights": "tlcore.backbones",
    "DEFAULT_BACKBONE": "tlcore.backbones",
    "block_table": "tlcore.blocks",
    "trainable_summary": "tlcore.blocks",
    "train": "tlcore.training",
    "start_training": "tlcore.training",
    "ensure_spare": "tlcore.spare",
    "RunResult": "tlcore.training",
    "read_status": "tlcore.runs",
    "read_metrics": "tlcore.runs",
    "epoch_rows": "tlcore.runs",
    "request_stop": "tlcore.runs",
    "stop_requested": "tlcore.runs",
    "ACTIVE_STATES": "tlcore.runs",
    "FINAL_STATES": "tlcore.runs",
    "resume": "tlcore.training",
    "AUGMENTED_VIEWS": "tlcore.config",
    "list_runs": "tlcore.runs",
    "run_summary": "tlcore.runs",
    "delete_run": "tlcore.runs",
    "current_training_run": "tlcore.runs",
    "evaluate_run": "tlcore.evaluation",
    "predict_files": "tlcore.prediction",
    "predict_bytes": "tlcore.prediction",
    "load_run_model": "tlcore.prediction",
    "export_run": "tlcore.export",
    "ensure_demo_dataset": "tlcore.demo",
    "tlcore_home": "tlcore.paths",
    "kept_for_run": "tlcore.feature_store",
}


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(_importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tlcore' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
