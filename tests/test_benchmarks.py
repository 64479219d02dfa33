"""Every benchmark still starts: `--help` exits 0 (a benchmark broken by a move inside tlcore is found here, not later).

The benchmarks themselves print numbers and are never run as tests (they take minutes).
"""

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = sorted(path for path in (pathlib.Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")
                    if not path.name.startswith("_"))  # `_presets.py` is the benchmarks' shared helper


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_the_benchmark_starts(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
