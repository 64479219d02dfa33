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
import time as _time

# When this process started using tlcore: a run started from the command line
# records it, so the time estimate can learn how long Python and the TensorFlow
# import take on this machine.
PROCESS_STARTED_AT = _time.time()

# TensorFlow's C++ start-up chatter would bury the messages meant for the user.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

# Public name -> module that defines it; imported on first use.
_PUBLIC = {
    "TrainConfig": "tlcore.training.config",
    "TlcoreError": "tlcore.errors",
    "InputError": "tlcore.errors",
    "WeightsUnavailableError": "tlcore.errors",
    "RunBusyError": "tlcore.errors",
    "TrainingFailedError": "tlcore.errors",
    "DamagedRunError": "tlcore.errors",
    "audit_dataset": "tlcore.data.audit",
    "with_new_split": "tlcore.data.audit",
    "DatasetAudit": "tlcore.data.records",
    "list_backbones": "tlcore.model.backbones",
    "get_backbone": "tlcore.model.backbones",
    "import_weights": "tlcore.model.weights_import",
    "import_uploaded_weights": "tlcore.model.weights_import",
    "may_install_weights_for_everyone": "tlcore.model.weights_import",
    "DEFAULT_BACKBONE": "tlcore.model.backbones",
    "block_table": "tlcore.model.blocks",
    "trainable_summary": "tlcore.model.blocks",
    "train": "tlcore.training.run",
    "start_training": "tlcore.training.launch",
    "ensure_spare": "tlcore.runs.spare",
    "RunResult": "tlcore.training.run",
    "read_status": "tlcore.runs.record",
    "read_metrics": "tlcore.runs.record",
    "epoch_rows": "tlcore.runs.record",
    "request_stop": "tlcore.runs.record",
    "stop_requested": "tlcore.runs.record",
    "ACTIVE_STATES": "tlcore.runs.folder",
    "resume": "tlcore.training.run",
    "AUGMENTED_VIEWS": "tlcore.training.feature_cache",
    "list_runs": "tlcore.runs.history",
    "run_summary": "tlcore.runs.history",
    "delete_run": "tlcore.runs.history",
    "current_training_run": "tlcore.runs.locks",
    "evaluate_run": "tlcore.results.evaluation",
    "read_evaluation": "tlcore.results.evaluation",
    "predict_files": "tlcore.results.prediction",
    "predict_bytes": "tlcore.results.prediction",
    "shape_warning": "tlcore.results.prediction",
    "load_run_model": "tlcore.results.prediction",
    # Exports that run anywhere, and the proof that they score like the app.
    "export_run": "tlcore.export.writers",
    "EXPORT_FORMATS": "tlcore.export.formats",
    "ExportFormat": "tlcore.export.formats",
    "export_formats": "tlcore.export.formats",
    "export_format": "tlcore.export.formats",
    "load_exported": "tlcore.export.runtimes",
    "run_exported": "tlcore.export.runtimes",
    "prepare_picture": "tlcore.export.pictures",
    "check_export": "tlcore.export.parity",
    "check_exports": "tlcore.export.parity",
    "ParityReport": "tlcore.export.parity",
    "saved_reports": "tlcore.export.parity",
    "make_bundle": "tlcore.export.bundle",
    "saved_bundle": "tlcore.export.bundle",
    "Bundle": "tlcore.export.bundle",
    "DEFAULT_BUNDLE_FORMATS": "tlcore.export.bundle",
    "export_snippets": "tlcore.export.snippets",
    "Snippet": "tlcore.export.snippets",
    "ensure_demo_dataset": "tlcore.data.demo",
    "tlcore_home": "tlcore.paths",
    "kept_for_run": "tlcore.training.feature_store",
    # The run folder's contract, for pages and notebooks that read runs.
    "MODEL_FILE": "tlcore.runs.folder",
    "LABELS_FILE": "tlcore.runs.folder",
    "CONFIG_FILE": "tlcore.runs.folder",
    "run_config": "tlcore.runs.folder",
    "run_labels": "tlcore.runs.folder",
    "has_evaluation": "tlcore.runs.folder",
    "find_run": "tlcore.runs.folder",
    "format_duration": "tlcore.runs.history",
    "seconds_left": "tlcore.data.checking",
    # Data: what an audit holds, uploads and shared server folders.
    "SPLITS": "tlcore.data.records",
    "SkippedFile": "tlcore.data.records",
    "Finding": "tlcore.data.records",
    "FindingKind": "tlcore.data.records",
    "suggested_exclusions": "tlcore.data.records",
    "save_uploaded_file": "tlcore.data.uploads",
    "save_uploaded_files": "tlcore.data.uploads",
    "keep_if_usable": "tlcore.data.uploads",
    "MAX_ZIP_GIGABYTES": "tlcore.data.archive",
    "server_paths_enabled": "tlcore.data.server_paths",
    "list_shared_folders": "tlcore.data.server_paths",
    "configured_roots": "tlcore.data.server_paths",
    "resolve_server_path": "tlcore.data.server_paths",
    "DATA_ROOTS_ENV_VAR": "tlcore.data.server_paths",
    "load_rgb": "tlcore.data.images",
    "thumbnail_jpeg": "tlcore.data.images",
    "picture_size": "tlcore.data.images",
    # Names shown as text, never markup or terminal control, in each medium.
    "markdown_text": "tlcore.text",
    "html_text": "tlcore.text",
    "terminal_text": "tlcore.text",
    # Freezing, defaults and the time estimate.
    "parse_freeze": "tlcore.model.blocks",
    "freeze_option": "tlcore.model.blocks",
    "DEFAULT_EPOCHS": "tlcore.training.config",
    "DEFAULT_LEARNING_RATE": "tlcore.training.config",
    "DEFAULT_BATCH_SIZE": "tlcore.training.config",
    "estimate_run": "tlcore.training.estimate",
    "measured_speed": "tlcore.training.estimate",
    "RunEstimate": "tlcore.training.estimate",
    # The presets: what a run does with no setting touched.
    "apply_preset": "tlcore.training.recipe",
    "describe_choice": "tlcore.training.recipe",
    "preset_settings": "tlcore.training.recipe",
    "PRESET_INFO": "tlcore.training.recipe",
    "DEFAULT_PRESET": "tlcore.training.recipe",
    "build_config": "tlcore.training.preset_config",
    "PlannedRun": "tlcore.training.preset_config",
    "choose_backbone": "tlcore.training.backbone_choice",
    "BackboneChoice": "tlcore.training.backbone_choice",
    "default_budget_s": "tlcore.training.backbone_choice",
    "plain_recipe_s": "tlcore.training.estimate",
    "process_prober": "tlcore.training.speed_probe",
    # The fair queue: runs wait in line for the machine's training slots.
    "queue_training": "tlcore.training.launch",
    "queue_place": "tlcore.runs.dispatch",
    "QueuePlace": "tlcore.runs.dispatch",
    "cancel_queued": "tlcore.runs.dispatch",
    "dispatch_queue": "tlcore.runs.dispatch",
    "run_in_line": "tlcore.runs.dispatch",
    "everyones_runs": "tlcore.runs.history",
    # A classroom: whose space, accounts and sign-in, limits per person, the teacher's view.
    "current_user": "tlcore.paths",
    "as_user": "tlcore.paths",
    "set_user_source": "tlcore.paths",
    "machine_home": "tlcore.paths",
    "user_home": "tlcore.paths",
    "classroom_mode": "tlcore.classroom.accounts",
    "add_user": "tlcore.classroom.accounts",
    "set_password": "tlcore.classroom.accounts",
    "remove_user": "tlcore.classroom.accounts",
    "list_users": "tlcore.classroom.accounts",
    "get_user": "tlcore.classroom.accounts",
    "user_for_email": "tlcore.classroom.accounts",
    "User": "tlcore.classroom.accounts",
    "sign_in": "tlcore.classroom.signin",
    "current_quotas": "tlcore.classroom.quotas",
    "quota_usage": "tlcore.classroom.quotas",
    "require_teacher": "tlcore.classroom.board",
    "class_runs": "tlcore.classroom.board",
    "class_line": "tlcore.classroom.board",
    "class_board": "tlcore.classroom.board",
    "stop_student_run": "tlcore.classroom.board",
    "delete_student_run": "tlcore.classroom.board",
    "sign_in_waits": "tlcore.classroom.board",
    "let_sign_in_again": "tlcore.classroom.board",
    "SignInError": "tlcore.errors",
    "QuotaExceededError": "tlcore.errors",
    "NotAllowedError": "tlcore.errors",
    # Fixing the data in place: edits recorded with a dataset, never made to the files.
    "DatasetEdits": "tlcore.data.edits",
    "read_edits": "tlcore.data.edits",
    "write_edits": "tlcore.data.edits",
    "parse_relabel": "tlcore.data.edits",
    "group_exclusions": "tlcore.data.records",
    "files_outside_training": "tlcore.data.records",
    # Why it is wrong: heatmaps, doubt, the explorer's cells, two runs side by side, training again.
    "Explanation": "tlcore.results.explain",
    "explain_files": "tlcore.results.explain",
    "explain_bytes": "tlcore.results.explain",
    "kept_explanations": "tlcore.results.explain",
    "cell_pictures": "tlcore.results.evaluation",
    "compare_runs": "tlcore.results.compare",
    "train_again": "tlcore.training.again",
    "pending_fixes": "tlcore.training.again",
    "previous_run": "tlcore.training.again",
}


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(_importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tlcore' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
