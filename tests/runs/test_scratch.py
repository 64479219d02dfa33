"""A training leaves nothing in the system's temporary folder: TensorFlow's autograph files go with its process.

The command-line test points TMPDIR at an empty folder of its own, so the
"system temporary folder" it checks holds only what that one training wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from conftest import assert_clean_success, last_json_line, tlcore_cli

from tlcore import paths
from tlcore.runs import processes


def test_a_training_leaves_no_files_in_the_system_temporary_folder(tiny_dataset, tmp_path):
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()

    result = tlcore_cli("train", tiny_dataset, "--runs-dir", tmp_path / "runs", "--json", "--weights", "none",
                        "--image-size", "32", "--backbone", "mobilenet_025", "--epochs", "1",
                        env=dict(os.environ, TMPDIR=str(system_temp)))

    assert_clean_success(result)
    assert last_json_line(result)["status"] == "completed"
    assert list(system_temp.iterdir()) == [], "autograph's generated files were left behind"
    assert list((paths.machine_home() / processes.SCRATCH_FOLDER).iterdir()) == [], "the process's own folder went too"


def test_the_scratch_folder_is_the_process_own_and_folders_of_ended_processes_go(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    root = paths.machine_home() / processes.SCRATCH_FOLDER
    left_by_a_killed_process = root / ended.stdout.strip()
    left_by_a_killed_process.mkdir(parents=True)
    (left_by_a_killed_process / "__autograph_generated_file1.py").write_text("x = 1\n")
    before = tempfile.gettempdir()
    try:
        folder = processes.use_scratch_temp_folder()

        assert folder == root / str(os.getpid())
        assert tempfile.gettempdir() == str(folder)
        assert not left_by_a_killed_process.exists()
        with tempfile.NamedTemporaryFile(suffix=".py", delete=False) as handle:
            assert handle.name.startswith(str(folder))
    finally:
        processes.remove_scratch_temp_folder()
    assert tempfile.gettempdir() == before
    assert not folder.exists()

