"""How long each page's script takes on a large dataset: what a page switch costs on the server.

Trains one fast-preset run on DATA (3 epochs) in a fresh TLCORE_HOME, makes
it the app's remembered dataset and last run, then runs every page with
Streamlit's AppTest twice: the first run pays this server's first audit load
and model load, the second is a page switch as a user makes it later. Prints
seconds per page; the issue's target is a page switch under 2 s. (The
browser's own drawing is not included.) It prints a table; it is not a test.

Usage: KERAS_HOME=... python benchmarks/page_times.py DATA
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from _presets import fresh_home

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["app.py", "pages/data.py", "pages/model.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py",
         "pages/export.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    args = parser.parse_args()
    home = fresh_home("tlcore-pages-")
    data = str(pathlib.Path(args.data).resolve())
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tlcore", "train", data, "--preset", "fast", "--epochs", "3", "--json"],
                   check=True, capture_output=True, env={**os.environ, "TLCORE_SPARE": "0"})
    run = max((home / "runs").iterdir(), key=lambda path: path.stat().st_mtime)
    print(f"trained {run.name} in {time.perf_counter() - started:.1f} s")
    (home / "app_state.json").write_text(json.dumps({"dataset_path": data, "last_run": run.name}))
    os.chdir(REPO)
    os.environ["TLCORE_SPARE"] = "0"
    from streamlit.testing.v1 import AppTest

    print("| page | first run (s) | page switch (s) | exceptions |")
    print("|---|---:|---:|---|")
    for page in PAGES:
        times, errors = [], []
        for _ in range(2):
            app = AppTest.from_file(str(REPO / page), default_timeout=300)
            begun = time.perf_counter()
            app.run()
            times.append(time.perf_counter() - begun)
            errors = [str(error.value)[:80] for error in app.exception]
        print(f"| {page} | {times[0]:.2f} | {times[1]:.2f} | {'; '.join(errors) or '-'} |", flush=True)


if __name__ == "__main__":
    main()
