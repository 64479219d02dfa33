"""Train a run again with fixes to its data: the same settings, more edits, a link back to the first run.

The Evaluate page's "Train again with these fixes" calls `train_again`: the new
run's config is the old run's with the fixes added to its dataset edits (files
left out, files moved to another class), so it reproduces from its config like
any run; `previous_run.json` in the new run names the run it fixes, so the two
can be shown side by side (`tlcore.compare_runs`).
"""

from __future__ import annotations

import os
import pathlib

from tlcore.data.edits import DatasetEdits
from tlcore.errors import InputError
from tlcore.runs import folder as run_folder
from tlcore.training import launch
from tlcore.training.config import TrainConfig

PREVIOUS_RUN_FILE = "previous_run.json"


def pending_fixes(run_dir: str | os.PathLike, edits: DatasetEdits) -> DatasetEdits:
    """The edits in `edits` that the run was not trained with (what "Train again" would add).

    Args:
        run_dir: a run folder.
        edits: the dataset's edits as they are now (e.g. the app's for this dataset).

    Returns:
        The exclusions and relabels the run's config does not have yet.
    """
    own = TrainConfig.from_run(run_folder.require_run_dir(run_dir)).edits
    excluded = tuple(name for name in edits.excluded_files if name not in own.excluded_files)
    relabels = tuple(pair for pair in edits.relabels if own.relabel_map.get(pair[0]) != pair[1])
    return DatasetEdits(excluded, relabels)


def train_again(run_dir: str | os.PathLike, edits: DatasetEdits, runs_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Start a new run with the same settings as `run_dir` and its data edits plus `edits`, in its own process.

    Args:
        run_dir: the run to train again.
        edits: the fixes: files to leave out and files to move to another
            class (added to the run's own; a file's new class wins).
        runs_dir: parent folder of the new run (default `$TLCORE_HOME/runs`).

    Returns:
        The new run's folder (training has started, as with `start_training`).

    Raises:
        InputError: `run_dir` is not a run, or there is nothing new to train with.
        RunBusyError: another run is training.

    Example:
        fixes = tlcore.DatasetEdits(relabels={"cats/actually_a_dog.jpg": "dogs"})
        new_run = tlcore.train_again(run_dir, fixes)
    """
    path = run_folder.require_run_dir(run_dir)
    if not pending_fixes(path, edits):
        raise InputError(f"there are no fixes that run {path.name} was not trained with; mark pictures to move or "
                         "leave out first (or start a new run on the Train page).")
    config = TrainConfig.from_run(path)
    new_run = launch.start_training(config.with_edits(config.edits.merged(edits)), runs_dir)
    run_folder.write_json_atomic(new_run / PREVIOUS_RUN_FILE, {"run": path.name, "run_dir": str(path.resolve()),
                                                               "fixes": pending_fixes(path, edits).to_dict()})
    return new_run


def previous_run(run_dir: str | os.PathLike) -> pathlib.Path | None:
    """The run that `run_dir` was trained again from (`train_again`), if it is still there."""
    link = run_folder.read_json(pathlib.Path(run_dir) / PREVIOUS_RUN_FILE, None)
    if not isinstance(link, dict):
        return None
    candidate = pathlib.Path(str(link.get("run_dir", "")))
    if (candidate / run_folder.CONFIG_FILE).is_file():
        return candidate
    return run_folder.find_run(link.get("run"))
