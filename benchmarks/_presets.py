"""What the benchmarks share: a TLCORE_HOME of their own, and a dataset's config as a preset chooses it.

Not a benchmark itself (the leading underscore keeps it out of tests/test_benchmarks.py).
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def fresh_home(prefix: str) -> pathlib.Path:
    """A new, empty TLCORE_HOME for this process (so no earlier run's features or speeds count)."""
    home = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["TLCORE_HOME"] = str(home)
    return home


def preset_config(data: str, preset: str, seed: int = 42, measure: bool = False):
    """(the config `tlcore train DATA --preset P --seed S` runs, the audit it was chosen for).

    Built by `tlcore.build_config`, as the command builds it. With `measure`, a
    network this computer has not measured yet is measured here first (and the
    figure kept), as the command would; without, first guesses stand in for it.
    """
    return planned_run(data, preset, seed, measure)[:2]


def planned_run(data: str, preset: str, seed: int = 42, measure: bool = False):
    """(config, audit, the `PlannedRun`) for `tlcore train DATA --preset P --seed S`."""
    from tlcore.data.audit import audit_dataset
    from tlcore.training import speed_probe
    from tlcore.training.preset_config import build_config

    audit = audit_dataset(data, 0.2, seed, find_duplicates=False)
    planned = build_config(data, preset, audit, {"seed": seed}, measure=speed_probe.prober(audit) if measure else None)
    return planned.config, audit, planned
