"""The command line's arguments: every command, its options and their types.

A usage mistake is an `InputError` (one `error:` line and exit code 2), not argparse's own exit.
"""

from __future__ import annotations

import argparse

from tlcore.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line and exit code 2."""

    def error(self, message):
        raise InputError(f"{message} (given: {self.prog}); run `{self.prog} --help` for the options.")


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tlcore", description="Fine-tune a pretrained image classifier on a folder of pictures.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _add_data_commands(commands)
    _add_training_commands(commands)
    _add_result_commands(commands)
    _add_other_commands(commands)
    return parser


def _add_data_commands(commands) -> None:
    """Commands about data and backbones: backbones, audit, demo."""
    backbones = commands.add_parser("backbones", help="list the pretrained backbones")
    backbones.add_argument("--json", action="store_true")

    audit = commands.add_parser(
        "audit", help="check a dataset: classes, counts, split, skipped files, duplicates and other findings"
    )
    audit.add_argument("data")
    audit.add_argument("--val-split", type=_number, default=0.2)
    audit.add_argument("--seed", type=_positive_int, default=42)
    audit.add_argument("--exclude", action="append", help="a dataset file to leave out (repeatable), as in train")
    _add_edit_options(audit)
    audit.add_argument("--no-duplicates", action="store_true", help="skip the duplicate search (faster)")
    audit.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", help="create the built-in demo dataset and print its path")
    demo.add_argument("--out")


def _add_edit_options(command) -> None:
    """--relabel and --edits: the dataset edits the app's Data and Evaluate pages make, for audit and train."""
    command.add_argument("--relabel", action="append", metavar="FILE=CLASS",
                         help="count a dataset file in another class; the file stays where it is (repeatable)")
    command.add_argument("--edits", metavar="FILE",
                         help="a JSON file of files to leave out and move (the app's Data page downloads one; "
                              "a run's config.json works too); --exclude and --relabel add to it")


def _add_training_commands(commands) -> None:
    """Commands that train: train, resume, and the internal worker and spare."""
    train = commands.add_parser("train", help="train a classifier on a folder or .zip of class folders")
    train.add_argument("data")
    train.add_argument("--preset", choices=("fast", "best"), default="best",
                       help="best (default): the new layer first, then the top blocks gently, in about the plain "
                       "recipe's time; fast: only the new layer, in seconds. Any option below overrides the preset")
    train.add_argument("--backbone")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--freeze", help="all | none | top:K | block names separated by commas")
    train.add_argument("--augment", help="none | light | strong")
    train.add_argument("--image-size", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--learning-rate", type=_number)
    train.add_argument("--val-split", type=_number)
    train.add_argument("--seed", type=_positive_int)
    train.add_argument("--two-phase", action="store_true", default=None, help="train the head first, then fine-tune")
    train.add_argument("--patience", type=_positive_int, help="early-stopping patience in epochs (0 turns it off)")
    train.add_argument("--label-smoothing", type=_number)
    train.add_argument("--dropout", type=_number)
    train.add_argument("--class-weights", action="store_true", default=None)
    train.add_argument("--feature-cache", help="auto | off")
    train.add_argument("--weights", help="imagenet | none")
    train.add_argument("--exclude", action="append", help="a dataset file to leave out (repeatable)")
    _add_edit_options(train)
    train.add_argument("--time-budget", type=_number, metavar="SECONDS",
                       help="with no --backbone, the preset picks the strongest network whose run fits this many "
                       "seconds here (default: what the plain tutorial recipe would take on these pictures)")
    train.add_argument("--runs-dir")
    train.add_argument("--json", action="store_true")

    speed = commands.add_parser("measure-speed", help="time a backbone's frozen pass on a few pictures, and keep the "
                                "figure for the presets' choice of network")
    speed.add_argument("backbone")
    speed.add_argument("files", nargs="+", help="pictures to time it on (a handful is enough)")
    speed.add_argument("--image-size", type=_positive_int, default=224)

    worker = commands.add_parser("worker")  # internal: the app's training process; not listed in --help
    worker.add_argument("run_dir")
    worker.add_argument("--resume-epochs", type=_positive_int)

    spare = commands.add_parser("spare")  # internal: a worker started ahead of time (tlcore.spare)
    spare.add_argument("directory")
    spare.add_argument("--parent", type=int, required=True)

    resume = commands.add_parser("resume", help="continue a stopped or interrupted run from its best model")
    resume.add_argument("run_dir")
    resume.add_argument("--epochs", type=_positive_int, default=5, help="how many more epochs (default 5)")
    resume.add_argument("--json", action="store_true")


def _add_result_commands(commands) -> None:
    """Commands on a trained run: evaluate, predict, export."""
    evaluate = commands.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--recompute", action="store_true",
                          help="measure the model again, replacing a saved (or damaged) evaluation.json")

    predict = commands.add_parser("predict", help="classify images with a run's model")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=_positive_int, default=3)
    predict.add_argument("--json", action="store_true")

    explain = commands.add_parser("explain", help="heatmaps of where a run's model looked in pictures (Grad-CAM)")
    explain.add_argument("run_dir")
    explain.add_argument("images", nargs="+")
    explain.add_argument("--out", required=True, help="folder to write the heatmap pictures (PNG) into")
    explain.add_argument("--class", dest="class_name", help="explain this class instead of the predicted one")
    explain.add_argument("--json", action="store_true")

    export = commands.add_parser("export", help="export a run's model, and check that it scores like the app")
    export.add_argument("run_dir")
    export.add_argument("--format", default="keras", help="keras | savedmodel | tflite | tflite-int8 | onnx")
    export.add_argument("--out")
    export.add_argument("--check", action="store_true",
                        help="re-score the run's validation pictures with the exported file, as a user outside the app "
                             "would, and compare with the app's model")
    export.add_argument("--json", action="store_true")

    bundle = commands.add_parser("bundle", help="one zip to hand on: model files, labels.json, MODEL_CARD.md, snippets")
    bundle.add_argument("run_dir")
    bundle.add_argument("--formats", default="keras,tflite,tflite-int8,onnx",
                        help="comma-separated: keras, savedmodel, tflite, tflite-int8, onnx")
    bundle.add_argument("--out", help="the zip to write (default: RUN_DIR/export/tlcore-RUN.zip)")
    bundle.add_argument("--json", action="store_true")


def _add_other_commands(commands) -> None:
    """Commands on runs and weights: runs, stop, weights."""
    runs_command = commands.add_parser("runs", help="list training runs (every user's, on a classroom server)")
    runs_command.add_argument("--runs-dir", help="only the runs in this folder")
    runs_command.add_argument("--user", help="only this user's runs")
    runs_command.add_argument("--json", action="store_true")

    serve = commands.add_parser("serve", help="start the app (streamlit run app.py) with the line of waiting runs moving "
                                "from the first moment; Streamlit's own options after --")
    serve.add_argument("--app", help="the app's app.py (default: the one beside the tlcore package, or in this folder)")
    serve.add_argument("streamlit_options", nargs=argparse.REMAINDER, help="-- then options for `streamlit run`")

    queue = commands.add_parser("queue", help="the runs waiting in line for the machine, in order")
    queue.add_argument("--dispatch", action="store_true", help="start the first runs now if slots are free")
    queue.add_argument("--json", action="store_true")
    _add_users_command(commands)

    stop = commands.add_parser("stop", help="ask a running training to stop (it keeps its best model)")
    stop.add_argument("run_dir")

    weights = commands.add_parser("weights", help="manage pretrained weights")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    weights_import = weights_commands.add_parser("import", help="validate weights files and copy them into the Keras cache")
    weights_import.add_argument("files", nargs="+")
    weights_import.add_argument("--backbone")
    weights_import.add_argument("--replace", action="store_true",
                                help="let a file Keras publishes no hash for replace your own weights already here")
    weights_import.add_argument("--for-everyone", action="store_true",
                                help="install a verified file for everyone on this computer (a teacher or the operator "
                                     "only); without it the file is for your own runs")


def _add_users_command(commands) -> None:
    """`tlcore users add|list|remove|password|unlock`: the accounts of a classroom."""
    users = commands.add_parser("users", help="classroom accounts: add, list, remove, password, unlock")
    users_commands = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    add = users_commands.add_parser("add", help="add an account; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--teacher", action="store_true", help="a teacher sees every student's runs")
    add.add_argument("--email", help="the school account (st.login) that signs in as this user")
    add.add_argument("--no-password", action="store_true", help="sign in with the school account only (needs --email)")
    listing = users_commands.add_parser("list", help="every account, its role, runs and uploads")
    listing.add_argument("--json", action="store_true")
    remove = users_commands.add_parser("remove", help="remove an account (its files stay)")
    remove.add_argument("name")
    password = users_commands.add_parser("password", help="set a new password, read from standard input")
    password.add_argument("name")
    unlock = users_commands.add_parser("unlock", help="forget a user's failed sign-ins: they may try again at once")
    unlock.add_argument("name")
