"""The `tlcore` command line.

Contract (the app and the benchmarks rely on it): exit 0 on success; exit 2 on
bad input or usage, with one `error: ...` line on stderr and no traceback; exit 1
only for a genuine internal failure. With `--json`, the last stdout line is one
JSON object (or list).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import traceback

from tlcore.errors import InputError, TlcoreError
from tlcore.quiet import import_tensorflow_quietly

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line and exit code 2."""

    def error(self, message):
        raise InputError(f"{message} (given: {self.prog}); run `{self.prog} --help` for the options.")


def _print_json(value) -> None:
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8, or a console that is not UTF-8:
        # \u escapes are valid JSON and decode back to the same name.
        text = json.dumps(value, ensure_ascii=True, default=str)
    print(text)


def _tolerate_unprintable_names() -> None:
    """Print any file name instead of failing on one the console cannot encode.

    A name that is not valid UTF-8 (common in old zips and memory cards) would
    otherwise end a command with UnicodeEncodeError on a strict UTF-8 console.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


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

    backbones = commands.add_parser("backbones", help="list the pretrained backbones")
    backbones.add_argument("--json", action="store_true")

    audit = commands.add_parser(
        "audit", help="check a dataset: classes, counts, split, skipped files, duplicates and other findings"
    )
    audit.add_argument("data")
    audit.add_argument("--val-split", type=_number, default=0.2)
    audit.add_argument("--seed", type=_positive_int, default=42)
    audit.add_argument("--exclude", action="append", help="a dataset file to leave out (repeatable), as in train")
    audit.add_argument("--no-duplicates", action="store_true", help="skip the duplicate search (faster)")
    audit.add_argument("--json", action="store_true")

    train = commands.add_parser("train", help="train a classifier on a folder or .zip of class folders")
    train.add_argument("data")
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
    train.add_argument("--runs-dir")
    train.add_argument("--json", action="store_true")

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

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="classify images with a run's model")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=_positive_int, default=3)
    predict.add_argument("--json", action="store_true")

    export = commands.add_parser("export", help="export a run's model")
    export.add_argument("run_dir")
    export.add_argument("--format", default="keras", help="keras | savedmodel | tflite | tflite-int8")
    export.add_argument("--out")
    export.add_argument("--json", action="store_true")

    runs_command = commands.add_parser("runs", help="list training runs")
    runs_command.add_argument("--runs-dir")
    runs_command.add_argument("--json", action="store_true")

    stop = commands.add_parser("stop", help="ask a running training to stop (it keeps its best model)")
    stop.add_argument("run_dir")

    weights = commands.add_parser("weights", help="manage pretrained weights")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    weights_import = weights_commands.add_parser("import", help="validate weights files and copy them into the Keras cache")
    weights_import.add_argument("files", nargs="+")
    weights_import.add_argument("--backbone")

    demo = commands.add_parser("demo", help="create the built-in demo dataset and print its path")
    demo.add_argument("--out")
    return parser


# ----------------------------------------------------------------- commands


def _cmd_backbones(args) -> None:
    from tlcore.backbones import list_backbones

    rows = list_backbones()
    if args.json:
        _print_json(rows)
        return
    print(f"{'name':<18} {'params':>11} {'top-1':>6} {'size':>5}  {'offline':<8} hint")
    for row in rows:
        offline = "yes" if row["available_offline"] else "no"
        print(f"{row['name']:<18} {row['params']:>11,} {row['imagenet_top1']:>5.1f}% {row['input_size']:>5}  {offline:<8} {row['speed_hint']}")


def _cmd_audit(args) -> None:
    from tlcore.data import audit_dataset

    audit = audit_dataset(
        args.data,
        val_split=args.val_split,
        seed=args.seed,
        excluded_files=tuple(args.exclude or ()),
        find_duplicates=not args.no_duplicates,
    )
    report = audit.to_dict()
    if args.json:
        _print_json(report)
        return
    print(f"dataset: {audit.root} ({audit.layout.replace('_', ' ')})")
    print(f"{'class':<24} {'train':>6} {'val':>6} {'test':>6}")
    for name, counts in report["counts"].items():
        print(f"{name:<24} {counts['train']:>6} {counts['val']:>6} {counts['test']:>6}")
    print(f"{len(audit.records)} images, {len(audit.skipped)} skipped")
    for item in audit.skipped:
        print(f"  skipped {item.relative}: {item.reason}")
    _print_findings(audit, report["suggested_exclusions"])


def _print_findings(audit, suggested: list[str]) -> None:
    """Each finding with its files, each duplicate group, and the exclusions it is safe to make."""
    for finding in audit.findings:
        label = "warning" if finding.severity == "warning" else "note"
        print(f"  {label}: {finding.message}")
        if finding.files and not finding.kind.startswith("duplicates_"):
            shown = ", ".join(finding.files[:_FILES_SHOWN])
            more = f" and {len(finding.files) - _FILES_SHOWN} more (all in --json)" if len(finding.files) > _FILES_SHOWN else ""
            print(f"    files: {shown}{more}")
    if audit.duplicates:
        print("duplicates:")
    for group in audit.duplicates:
        where = ", ".join(f"{member.relative} ({member.split})" for member in group.members)
        print(f"  {group.kind}, {group.scope.replace('_', ' ')}: {where}")
    if not audit.duplicates_checked:
        print("  note: duplicates were not looked for (--no-duplicates).")
    if suggested:
        options = " ".join(f"--exclude {shlex.quote(name)}" for name in suggested)
        copies = "exact copy" if len(suggested) == 1 else "exact copies"
        print(f"safe to exclude ({len(suggested)} {copies}; your files stay where they are):")
        print(f"  tlcore train {shlex.quote(audit.source)} {options}")


_FILES_SHOWN = 8


def _train_config(args):
    from tlcore.config import TrainConfig

    options = {
        "backbone": args.backbone,
        "epochs": args.epochs,
        "freeze": args.freeze,
        "augment": args.augment,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "val_split": args.val_split,
        "seed": args.seed,
        "two_phase": args.two_phase,
        "early_stopping_patience": args.patience,
        "label_smoothing": args.label_smoothing,
        "dropout": args.dropout,
        "class_weights": args.class_weights,
        "feature_cache": args.feature_cache,
        "weights": args.weights,
        "excluded_files": tuple(args.exclude) if args.exclude else None,
    }
    return TrainConfig(data=args.data, **{key: value for key, value in options.items() if value is not None})


def _cmd_train(args) -> int:
    from tlcore.training import train

    config = _train_config(args)
    if not args.json:
        print(f"training {config.backbone} on {config.data} ...", flush=True)
    result = train(config, runs_dir=args.runs_dir, echo=None if args.json else _echo_epoch,
                   audit_future=getattr(args, "audit_future", None))
    return _report_result(result, args.json)


def _report_result(result, as_json: bool) -> int:
    if as_json:
        _print_json(result.to_dict())
    else:
        accuracy = f"{result.val_accuracy:.1%}" if result.val_accuracy is not None else "n/a"
        print(f"run: {result.run_dir}")
        print(f"status: {result.status} ({result.message})")
        print(f"validation accuracy: {accuracy} after {result.epochs_run} epochs in {result.wall_s:.1f} s")
        print(f"try it: tlcore predict {result.run_dir} IMAGE ...   export it: tlcore export {result.run_dir} --format tflite")
    return EXIT_OK if result.status in ("completed", "stopped") else EXIT_INTERNAL


def _echo_epoch(row: dict) -> None:
    parts = [f"epoch {row['epoch']}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    print("  " + ", ".join(parts), flush=True)


def _cmd_worker(args) -> int:
    from tlcore.training import run_worker

    result = run_worker(args.run_dir, args.resume_epochs, audit_future=getattr(args, "audit_future", None))
    _print_json(result.to_dict())
    return EXIT_OK


def _cmd_spare(args) -> int:
    from tlcore.spare import serve

    return serve(args.directory, args.parent)


def _cmd_resume(args) -> int:
    from tlcore.training import resume

    result = resume(args.run_dir, args.epochs, echo=None if args.json else _echo_epoch)
    return _report_result(result, args.json)


def _cmd_evaluate(args) -> None:
    from tlcore.evaluation import evaluate_run

    reports = evaluate_run(args.run_dir)
    if args.json:
        _print_json(reports)
        return
    for split, report in reports.items():
        print(f"{split}: accuracy {report['accuracy']:.1%}, loss {report['loss']:.4f}, {report['images']} images")
        print(f"  {'class':<24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
        for row in report["per_class"]:
            print(f"  {row['class']:<24} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} {row['support']:>7}")
        print("  confusion (rows: true, columns: predicted):")
        for name, counts in zip(report["class_names"], report["confusion"], strict=False):
            print(f"  {name:<24} " + " ".join(f"{c:>4}" for c in counts))


def _cmd_predict(args) -> None:
    from tlcore.prediction import predict_files

    predictions = predict_files(args.run_dir, args.images, top_k=args.top_k)
    if args.json:
        _print_json([p.to_dict() for p in predictions])
        return
    for prediction in predictions:
        ranked = ", ".join(f"{name} {probability:.1%}" for name, probability in prediction.top)
        print(f"{prediction.file}: {ranked}")


def _cmd_export(args) -> None:
    from tlcore.export import export_run

    path = export_run(args.run_dir, args.format, args.out)
    if args.json:
        _print_json({"path": str(path), "format": args.format})
    else:
        print(f"exported {args.format} to {path}")


def _cmd_runs(args) -> None:
    from tlcore.runs import list_runs

    rows = list_runs(args.runs_dir)
    if args.json:
        _print_json(rows)
        return
    if not rows:
        print("no runs yet; start one with `tlcore train DATA`.")
    for row in rows:
        accuracy = f"{row['best_val_accuracy']:.1%}" if row["best_val_accuracy"] is not None else "-"
        print(f"{row['status']:<12} {accuracy:>6}  {row['run_dir']}")


def _cmd_stop(args) -> None:
    from tlcore.runs import read_status, request_stop

    request_stop(args.run_dir)
    print(f"stop requested; the run ends after its current batch (status now: {read_status(args.run_dir)['state']}).")


def _cmd_weights(args) -> None:
    from tlcore.backbones import import_weights

    for file in args.files:
        print(f"imported {file} -> {import_weights(file, args.backbone)}")


def _cmd_demo(args) -> None:
    from tlcore.demo import ensure_demo_dataset, generate_demo_dataset

    print(generate_demo_dataset(args.out) if args.out else ensure_demo_dataset())


NEEDS_TENSORFLOW = {"train", "worker", "resume", "evaluate", "predict", "export", "weights"}

COMMANDS = {
    "backbones": _cmd_backbones,
    "audit": _cmd_audit,
    "train": _cmd_train,
    "worker": _cmd_worker,
    "spare": _cmd_spare,  # imports TensorFlow itself, after starting to watch for a run
    "resume": _cmd_resume,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "runs": _cmd_runs,
    "stop": _cmd_stop,
    "weights": _cmd_weights,
    "demo": _cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising."""
    _tolerate_unprintable_names()
    try:
        args = build_parser().parse_args(argv)
        # For training, this also rejects bad options before paying for the TensorFlow import.
        args.audit_future = _start_audit_early(args)
        if args.command in NEEDS_TENSORFLOW:
            import_tensorflow_quietly()
        return COMMANDS[args.command](args) or EXIT_OK
    except InputError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return EXIT_INPUT
    except TlcoreError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a genuine bug: say so briefly, details on request
        if os.environ.get("TLCORE_DEBUG"):
            traceback.print_exc()
        print(f"error: internal error ({type(error).__name__}: {_one_line(error)}); "
              "set TLCORE_DEBUG=1 to see the details and please report it.", file=sys.stderr)
        return EXIT_INTERNAL


def _start_audit_early(args):
    """For a training command, start its data audit now, to run while TensorFlow imports.

    Returns the audit's future, or None (another command, or a run folder
    whose config cannot be read: the command itself then reports that).
    """
    from tlcore import runs
    from tlcore.config import TrainConfig
    from tlcore.training import audit_in_background

    if args.command == "train":
        return audit_in_background(_train_config(args))
    if args.command == "worker":
        try:
            config = TrainConfig.from_dict(runs.read_json(runs.require_run_dir(args.run_dir) / runs.CONFIG_FILE, {}))
        except Exception:  # a missing or broken config: the worker command reports it
            return None
        return audit_in_background(config)
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main_exit() -> None:
    """Console-script entry point: `tlcore ...`."""
    exit_process(main())


def exit_process(code: int) -> None:
    """End the process with `code`, skipping TensorFlow's teardown.

    When a command returns, everything it writes (the run folder's files,
    stdout, stderr) is complete and closed. What a normal interpreter exit
    still does after that is tear down TensorFlow and the Keras objects, about
    a second on a 2-core laptop, which only delays the prompt (and, for the
    app's worker, the process's end). Without TensorFlow loaded, exit normally.
    """
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
