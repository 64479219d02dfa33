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


def preset_config(data: str, preset: str, seed: int = 42):
    """(the config `tlcore train DATA --preset P --seed S` runs, the audit it was chosen for)."""
    from tlcore.data.audit import audit_dataset
    from tlcore.training.config import TrainConfig
    from tlcore.training.recipe import apply_preset

    base = TrainConfig(data=data, seed=seed)
    audit = audit_dataset(data, base.val_split, seed, find_duplicates=False)
    return apply_preset(base, preset, audit), audit
