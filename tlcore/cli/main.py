"""The `tlcore` command line.

Contract (the app and the benchmarks rely on it): exit 0 on success; exit 2 on
bad input or usage, with one `error: ...` line on stderr and no traceback; exit 1
only for a genuine internal failure. With `--json`, the last stdout line is one
JSON object (or list).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
import traceback

from tlcore.cli.output import print_json, say, tolerate_unprintable_names
from tlcore.cli.parser import build_parser
from tlcore.cli.run_commands import cmd_bundle, cmd_evaluate, cmd_explain, cmd_export, cmd_predict
from tlcore.errors import InputError, TlcoreError
from tlcore.runs.processes import remove_scratch_temp_folder, use_scratch_temp_folder
from tlcore.runs.quiet import import_tensorflow_quietly

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


def _cmd_backbones(args) -> None:
    from tlcore.model.backbones import list_backbones

    rows = list_backbones()
    if args.json:
        print_json(rows)
        return
    say(f"{'name':<18} {'params':>11} {'top-1':>6} {'size':>5}  {'offline':<8} hint")
    for row in rows:
        offline = "yes" if row["available_offline"] else "no"
        say(f"{row['name']:<18} {row['params']:>11,} {row['imagenet_top1']:>5.1f}% {row['input_size']:>5}  {offline:<8} {row['speed_hint']}")


def _edits(args):
    """The dataset edits the command line gives: --edits FILE, then --exclude and --relabel added to it."""
    from tlcore.data.edits import DatasetEdits, parse_relabel, read_edits

    edits = read_edits(args.edits) if getattr(args, "edits", None) else DatasetEdits()
    more = DatasetEdits(tuple(args.exclude or ()), tuple(parse_relabel(text) for text in getattr(args, "relabel", None) or ()))
    return edits.merged(more)


def _cmd_audit(args) -> None:
    from tlcore.data.audit import audit_dataset

    edits = _edits(args)
    audit = audit_dataset(
        args.data,
        val_split=args.val_split,
        seed=args.seed,
        excluded_files=edits.excluded_files,
        find_duplicates=not args.no_duplicates,
        progress=_progress_printer("checked"),
        relabels=edits.relabels,
    )
    report = audit.to_dict()
    if args.json:
        print_json(report)
        return
    say(f"dataset: {audit.root} ({audit.layout.replace('_', ' ')})")
    say(f"{'class':<24} {'train':>6} {'val':>6} {'test':>6}")
    for name, counts in report["counts"].items():
        say(f"{name:<24} {counts['train']:>6} {counts['val']:>6} {counts['test']:>6}")
    say(f"{len(audit.records)} images, {len(audit.skipped)} skipped")
    for item in audit.skipped:
        say(f"  skipped {item.relative}: {item.reason}")
    _print_findings(audit, report["suggested_exclusions"])


def _print_findings(audit, suggested: list[str]) -> None:
    """Each finding with its files, each duplicate group, and the exclusions it is safe to make."""
    from tlcore.data.records import suggested_exclusions

    for finding in audit.findings:
        label = "warning" if finding.severity == "warning" else "note"
        say(f"  {label}: {finding.message}")
        if finding.files and not finding.kind.startswith("duplicates_"):
            shown = ", ".join(finding.files[:_FILES_SHOWN])
            more = f" and {len(finding.files) - _FILES_SHOWN} more (all in --json)" if len(finding.files) > _FILES_SHOWN else ""
            say(f"    files: {shown}{more}")
    if audit.duplicates:
        pictures = sum(len(group.members) for group in audit.duplicates)
        say(f"duplicates ({len(audit.duplicates)} groups, {pictures} files; every one listed):")
    for group in audit.duplicates:
        where = ", ".join(f"{member.relative} ({member.split})" for member in group.members)
        say(f"  {group.kind}, {group.scope.replace('_', ' ')}: {where}")
    if not audit.duplicates_checked:
        say("  note: duplicates were not looked for (--no-duplicates).")
    if suggested:
        options = " ".join(f"--exclude {shlex.quote(name)}" for name in suggested)
        copies = "exact copy" if len(suggested) == 1 else "exact copies"
        say(f"safe to exclude ({len(suggested)} {copies}; your files stay where they are):")
        say(f"  tlcore train {shlex.quote(audit.source)} {options}")
    near = sorted(set(suggested_exclusions(audit, near=True)) - set(suggested))
    if near:
        say(f"near copies too ({len(near)}; look at them first: two shots of one scene are real data): "
            + " ".join(f"--exclude {shlex.quote(name)}" for name in near))


_FILES_SHOWN = 8


def _given_settings(args) -> dict:
    """The TrainConfig fields given on the command line: set by hand, they win over the preset."""
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
    }
    edits = _edits(args)
    options.update(excluded_files=edits.excluded_files or None, relabels=edits.relabels or None)
    return {key: value for key, value in options.items() if value is not None}


def _train_config(args):
    """The settings given, before any preset chooses the rest (for the audit that runs while Python imports)."""
    from tlcore.training.config import TrainConfig

    return TrainConfig(data=args.data, **_given_settings(args))


def _planned_run(args, audit):
    """The run `tlcore train` plans: `build_config`, as the app's Train page calls it, with the flags as set by hand.

    A network this computer has not measured is measured here, in this process (which imports Keras anyway).
    """
    from tlcore.training import speed_probe
    from tlcore.training.preset_config import build_config

    return build_config(args.data, args.preset, audit, _given_settings(args), budget_s=args.time_budget,
                        measure=speed_probe.prober(audit))


def _cmd_train(args) -> int:
    from tlcore.training.recipe import describe_choice
    from tlcore.training.run import audit_in_background, train

    audit_future = getattr(args, "audit_future", None) or audit_in_background(_train_config(args))
    planned = _planned_run(args, audit_future.result())
    config = planned.config
    for note in planned.notes:
        say(f"note: {note}", file=sys.stderr, flush=True)
    if not args.json:
        chosen = f"; {planned.choice.reason}" if planned.choice else ""
        offer = planned.choice.offer if planned.choice else None
        say(f"training {config.backbone} on {config.data} ({args.preset} preset{chosen}: {describe_choice(config)}) ...",
            flush=True)
        if offer is not None:
            say(f"  {offer.title} would be stronger and fits the time, but needs a download of about "
                  f"{offer.download_mb:.0f} MB: add --backbone {offer.name} to fetch it.", flush=True)
    result = train(config, runs_dir=args.runs_dir, echo=None if args.json else _echo_epoch, audit_future=audit_future)
    return _report_result(result, args.json)


def _cmd_measure_speed(args) -> None:
    from tlcore.training.speed_probe import measure_and_keep

    missing = [name for name in args.files if not os.path.isfile(name)]
    if missing:
        raise InputError(f"no picture at {missing[0]!r}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                         "give the paths of a few pictures to time the network on, e.g. photos/cats/1.jpg.")
    rate = measure_and_keep(args.backbone, args.image_size, args.files)
    print_json({"backbone": args.backbone, "image_size": args.image_size, "images_per_s": rate})


def _progress_printer(verb: str, every_s: float = 1.0):
    """A `progress(done, total)` that says on stderr how far it is and how long it will take, once a second."""
    import time

    from tlcore.data.checking import seconds_left
    from tlcore.runs.history import format_duration

    started, last = time.monotonic(), [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        left = seconds_left(done, total, now - started)
        when = f", about {format_duration(left)} left" if left is not None and done < total else ""
        say(f"{verb} {done:,} of {total:,} pictures{when}", file=sys.stderr, flush=True)

    return progress


def _report_result(result, as_json: bool) -> int:
    if as_json:
        print_json(result.to_dict())
    else:
        accuracy = f"{result.val_accuracy:.1%}" if result.val_accuracy is not None else "n/a"
        say(f"run: {result.run_dir}")
        say(f"status: {result.status} ({result.message})")
        say(f"validation accuracy: {accuracy} after {result.epochs_run} epochs in {result.wall_s:.1f} s")
        say(f"try it: tlcore predict {result.run_dir} IMAGE ...   export it: tlcore export {result.run_dir} --format tflite")
    return EXIT_OK if result.status in ("completed", "stopped") else EXIT_INTERNAL


def _echo_epoch(row: dict) -> None:
    parts = [f"epoch {row['epoch']}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    say("  " + ", ".join(parts), flush=True)


def _cmd_worker(args) -> int:
    from tlcore.training.run import run_worker

    result = run_worker(args.run_dir, args.resume_epochs, audit_future=getattr(args, "audit_future", None))
    print_json(result.to_dict())
    return EXIT_OK


def _cmd_spare(args) -> int:
    from tlcore.runs.spare import serve

    return serve(args.directory, args.parent, run_claimed_run)


def _cmd_resume(args) -> int:
    from tlcore.training.run import resume

    result = resume(args.run_dir, args.epochs, echo=None if args.json else _echo_epoch)
    return _report_result(result, args.json)


def _cmd_runs(args) -> None:
    from tlcore.cli.users import cmd_runs

    cmd_runs(args, print_json)


def _cmd_serve(args) -> None:
    """`streamlit run app.py`, with the runs that waited while the server was down started first, and kept moving."""
    from tlcore.runs import dispatch as run_dispatch

    app = _app_script(args.app)
    options = args.streamlit_options[1:] if args.streamlit_options[:1] == ["--"] else args.streamlit_options
    started = run_dispatch.dispatch_queue()  # never raises: a busy line is the keeper's to retry
    if started:
        print(f"started {len(started)} run(s) that waited in line while the server was down.")
    run_dispatch.keep_line_moving()
    from streamlit.web import cli as streamlit_cli

    streamlit_cli.main(["run", str(app), *options], standalone_mode=False)


def _app_script(given: str | None):
    """The app's app.py: `given`, else the one beside the tlcore package (a source checkout), else this folder's."""
    import pathlib

    import tlcore

    candidates = [pathlib.Path(given)] if given else [
        pathlib.Path(tlcore.__file__).resolve().parents[1] / "app.py", pathlib.Path.cwd() / "app.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"no app.py at {' or '.join(str(c) for c in candidates)}; run `tlcore serve` in the folder that "
                     "holds the app's app.py, or name it with --app PATH.")


def _cmd_queue(args) -> None:
    from tlcore.cli.users import cmd_queue

    cmd_queue(args, print_json)


def _cmd_users(args) -> None:
    from tlcore.cli.users import cmd_users

    cmd_users(args, print_json)


def _cmd_stop(args) -> None:
    from tlcore.runs.dispatch import dispatch_queue
    from tlcore.runs.folder import ACTIVE_STATES
    from tlcore.runs.record import read_status, request_stop

    request_stop(args.run_dir)
    dispatch_queue()  # a hung run was ended at once: the next in line starts now
    status = read_status(args.run_dir)
    if status.get("state") not in ACTIVE_STATES:  # it had ended, or it hung and was ended now
        say(f"stop requested; the run is {status.get('state')}: {status.get('message')}")
        return
    say(f"stop requested; the run ends after its current batch (status now: {status['state']}).")


def _cmd_weights(args) -> None:
    from tlcore.model.weights_import import import_weights

    for file in args.files:
        imported = import_weights(file, args.backbone, replace=args.replace, for_everyone=args.for_everyone)
        say(f"imported {file} -> {imported.path} ({imported.note})")


def _cmd_demo(args) -> None:
    from tlcore.data.demo import ensure_demo_dataset, generate_demo_dataset

    say(generate_demo_dataset(args.out) if args.out else ensure_demo_dataset())


NEEDS_TENSORFLOW = {"train", "worker", "resume", "evaluate", "predict", "explain", "export", "bundle", "weights"}


COMMANDS = {
    "backbones": _cmd_backbones,
    "audit": _cmd_audit,
    "train": _cmd_train,
    "measure-speed": _cmd_measure_speed,
    "worker": _cmd_worker,
    "spare": _cmd_spare,  # imports TensorFlow itself, after starting to watch for a run
    "resume": _cmd_resume,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "export": cmd_export,
    "bundle": cmd_bundle,
    "runs": _cmd_runs,
    "queue": _cmd_queue,
    "serve": _cmd_serve,
    "users": _cmd_users,
    "stop": _cmd_stop,
    "weights": _cmd_weights,
    "demo": _cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising.

    With `--json`, a failure also ends stdout with one JSON object
    (`{"status": "error", "error": ..., "exit_code": ...}`), so a program
    reading the last line always gets an object.
    """
    tolerate_unprintable_names()
    wants_json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        return _guarded(lambda: _run_command(argv), json_errors=wants_json)
    finally:
        # The command's temporary files go with it; a caller in the same process (a test, a program
        # calling `main`) gets the system's temporary folder back rather than one inside TLCORE_HOME.
        remove_scratch_temp_folder()


def _run_command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # For training, this also rejects bad options before paying for the TensorFlow import.
    args.audit_future = _start_audit_early(args)
    if args.command in NEEDS_TENSORFLOW or args.command == "spare":
        use_scratch_temp_folder()  # TensorFlow's autograph files go with the process, not into the system's
    if args.command in NEEDS_TENSORFLOW:
        import_tensorflow_quietly()
        if os.environ.get("TLCORE_DISTRIBUTION", "").strip() == "multi_worker" and args.command in ("train", "worker", "resume"):
            from tlcore.training.accelerator import start_multi_worker

            start_multi_worker()  # before TensorFlow runs anything else, as its collective ops require
    return COMMANDS[args.command](args) or EXIT_OK


def run_claimed_run(run_dir: str, resume_epochs: int | None) -> int:
    """The worker's entry point for a run a spare process claimed; returns the exit code.

    The spare has already imported TensorFlow; this does what `tlcore worker
    RUN_DIR` does after its import, with the same exit codes.
    """
    args = argparse.Namespace(command="worker", run_dir=str(run_dir), resume_epochs=resume_epochs)
    return _guarded(lambda: _cmd_worker(_with_audit_started(args)))


def _with_audit_started(args):
    args.audit_future = _start_audit_early(args)
    return args


def _guarded(command, json_errors: bool = False) -> int:
    """Run `command` and turn what it raises into the CLI's exit codes and one `error:` line."""
    try:
        return command() or EXIT_OK
    except BrokenPipeError:
        return _output_closed()
    except InputError as error:
        return _report_error(_one_line(error), EXIT_INPUT, json_errors)
    except TlcoreError as error:
        return _report_error(_one_line(error), EXIT_INTERNAL, json_errors)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            return _report_error(_internal_message(error), EXIT_INTERNAL, json_errors)
        return _report_error(f"the disk is full ({error.filename or 'writing a file'}); free some space and try again. "
                             "Files already saved (a run's best model) are intact.", EXIT_INTERNAL, json_errors)
    except KeyboardInterrupt:
        return _report_error("interrupted", 130, json_errors)
    except Exception as error:  # a genuine bug: say so briefly, details on request
        return _report_error(_internal_message(error), EXIT_INTERNAL, json_errors)


def _internal_message(error: BaseException) -> str:
    if os.environ.get("TLCORE_DEBUG"):
        traceback.print_exc()
    return (f"internal error ({type(error).__name__}: {_one_line(error)}); "
            "set TLCORE_DEBUG=1 to see the details and please report it.")


def _report_error(message: str, code: int, as_json: bool) -> int:
    say(f"error: {message}", file=sys.stderr)
    if as_json:
        try:
            print_json({"status": "error", "error": message, "exit_code": code})
        except BrokenPipeError:
            return _output_closed()
    return code


def _output_closed() -> int:
    """The reader of stdout went away (`tlcore runs | head`): end quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    except (OSError, ValueError):
        pass
    return EXIT_OK


def _start_audit_early(args):
    """For a training command, start its data audit now, to run while TensorFlow imports.

    Returns the audit's future, or None (another command, or a run folder
    whose config cannot be read: the command itself then reports that).
    """
    from tlcore.runs import folder as run_folder
    from tlcore.training.config import TrainConfig
    from tlcore.training.run import audit_in_background

    if args.command == "train":
        return audit_in_background(_train_config(args))
    if args.command == "worker":
        try:
            config = TrainConfig.from_run(run_folder.require_run_dir(args.run_dir))
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
    remove_scratch_temp_folder()
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    logging.shutdown()
    os._exit(code)
