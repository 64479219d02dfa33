"""Dataset edits on the command line: `--exclude`, `--relabel FILE=CLASS` and `--edits FILE` for audit and train."""

import json
import shutil

from conftest import assert_clean_success, last_json_line, save_image, smooth_picture, tlcore_cli

from tlcore.cli.main import _train_config
from tlcore.cli.parser import build_parser
from tlcore.data.edits import DatasetEdits, write_edits


def pets(root):
    for class_index, label in enumerate(("cats", "dogs")):
        for index in range(6):
            save_image(root, f"{label}/{index}.png", smooth_picture(100 * class_index + index))
    shutil.copyfile(root / "cats/0.png", root / "cats/0 copy.png")
    shutil.copyfile(root / "dogs/1.png", root / "cats/dog in the wrong folder.png")
    return root


def test_audit_applies_relabels_and_exclusions_and_names_every_file_of_every_group(tmp_path):
    data = pets(tmp_path / "pets")
    before = last_json_line(tlcore_cli("audit", data, "--json"))
    assert sorted(sorted(group["files"]) for group in before["duplicates"]) == [
        ["cats/0 copy.png", "cats/0.png"], ["cats/dog in the wrong folder.png", "dogs/1.png"]]
    assert all(len(group["members"]) == len(group["files"]) for group in before["duplicates"])

    result = tlcore_cli("audit", data, "--relabel", "cats/dog in the wrong folder.png=dogs", "--exclude", "cats/0 copy.png",
                        "--json")

    assert_clean_success(result)
    report = last_json_line(result)
    assert report["relabels"] == {"cats/dog in the wrong folder.png": "dogs"}
    assert sum(report["counts"]["cats"].values()) == 6 and sum(report["counts"]["dogs"].values()) == 7
    assert [group["scope"] for group in report["duplicates"]] == ["within_class"]  # no more label conflict


def test_train_takes_an_edits_file_and_adds_the_flags_to_it(tmp_path):
    edits = write_edits(tmp_path / "edits.json", DatasetEdits(("cats/a.png",), {"cats/b.png": "dogs"}))
    args = build_parser().parse_args(["train", "pets", "--edits", str(edits), "--exclude", "dogs/c.png",
                                      "--relabel", "cats/d.png=dogs", "--relabel", "cats/b.png=birds"])

    config = _train_config(args)

    assert config.excluded_files == ("cats/a.png", "dogs/c.png")
    assert dict(config.relabels) == {"cats/b.png": "birds", "cats/d.png": "dogs"}


def test_a_runs_config_is_an_edits_file_too(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": "pets", "excluded_files": ["x.png"], "relabels": {}}))

    config = _train_config(build_parser().parse_args(["train", "pets", "--edits", str(tmp_path / "config.json")]))

    assert config.excluded_files == ("x.png",)


def test_a_relabel_without_a_class_or_to_an_unknown_class_is_exit_2(tmp_path):
    data = pets(tmp_path / "pets")

    no_class = tlcore_cli("audit", data, "--relabel", "cats/1.png")
    unknown = tlcore_cli("audit", data, "--relabel", "cats/1.png=birds")

    assert no_class.returncode == 2 and "FILE=CLASS" in no_class.stderr
    assert unknown.returncode == 2 and "'birds'" in unknown.stderr and "'cats', 'dogs'" in unknown.stderr
    assert "Traceback" not in no_class.stderr + unknown.stderr
