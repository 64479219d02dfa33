"""The CLI contract, through `python -m tlcore` in a subprocess as users and the app call it.

Each process pays for its own TensorFlow import, so one trained run is shared by
the commands that read a run, and the bad-input cases run a few at a time.
"""

import json
import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import assert_clean_success, last_json_line, tlcore_cli

from tlcore import paths
from tlcore.runs import folder as run_folder
from tlcore.runs import history as run_history
from tlcore.runs import record as run_record

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


# ----------------------------------------------------------------- a run trained through the CLI


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_home")
    return {**os.environ, "TLCORE_HOME": str(home / "tlcore"), "KERAS_HOME": str(home / "keras")}


@pytest.fixture(scope="module")
def trained(shared_tiny_dataset, cli_env, tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("cli_runs")
    result = tlcore_cli(
        "train", shared_tiny_dataset, "--backbone", "mobilenetv2_035", "--weights", "none", "--image-size", 32,
        "--epochs", 2, "--batch-size", 8, "--learning-rate", 0.01, "--val-split", 0.25, "--seed", 1,
        "--freeze", "all", "--augment", "none", "--runs-dir", runs_dir, "--json",
        env=cli_env,
    )
    return result, runs_dir


def test_train_json_last_line_reports_the_run(trained):
    result, runs_dir = trained

    assert_clean_success(result)
    summary = last_json_line(result)
    assert summary["status"] == "completed"
    assert summary["epochs_run"] == 2
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    assert 0.0 <= summary["best_val_accuracy"] <= 1.0
    assert summary["wall_s"] > 0
    run_dir = pathlib.Path(summary["run_dir"])
    assert run_dir.parent == runs_dir
    assert run_record.read_status(run_dir)["state"] == "completed"
    assert (run_dir / run_folder.MODEL_FILE).is_file()
    config = json.loads((run_dir / run_folder.CONFIG_FILE).read_text())
    assert (config["image_size"], config["epochs"], config["seed"], config["val_split"]) == (32, 2, 1, 0.25)


def test_runs_json_lists_the_run(trained, cli_env):
    result, runs_dir = trained
    run_dir = last_json_line(result)["run_dir"]

    listed = tlcore_cli("runs", "--runs-dir", runs_dir, "--json", env=cli_env)

    assert_clean_success(listed)
    rows = last_json_line(listed)
    assert [(row["run_dir"], row["status"]) for row in rows] == [(run_dir, "completed")]


def _validation_count(run_dir) -> int:
    """The run's validation pictures, as its split.json lists them (near copies stay together, so not always 20%)."""
    return len(json.loads((pathlib.Path(run_dir) / "split.json").read_text())["val"])


def test_evaluate_json(trained, cli_env):
    run_dir = last_json_line(trained[0])["run_dir"]

    result = tlcore_cli("evaluate", run_dir, "--json", env=cli_env)

    assert_clean_success(result)
    report = last_json_line(result)["val"]
    assert report["images"] == _validation_count(run_dir)
    assert report["class_names"] == ["circles", "squares", "stripes"]
    assert len(report["confusion"]) == 3
    assert {"accuracy", "loss", "per_class", "macro_f1"} <= set(report)


def test_predict_json(trained, cli_env, shared_tiny_dataset):
    run_dir = last_json_line(trained[0])["run_dir"]
    images = [shared_tiny_dataset / "circles" / "circles_00.png", shared_tiny_dataset / "stripes" / "stripes_03.jpg"]

    result = tlcore_cli("predict", run_dir, *images, "--top-k", 2, "--json", env=cli_env)

    assert_clean_success(result)
    predictions = last_json_line(result)
    assert [p["file"] for p in predictions] == [str(path) for path in images]
    for prediction in predictions:
        assert len(prediction["top"]) == 2
        assert {row["class"] for row in prediction["top"]} <= {"circles", "squares", "stripes"}
        assert all(0.0 <= row["probability"] <= 1.0 for row in prediction["top"])


def test_export_writes_the_model_and_labels(trained, cli_env, tmp_path):
    run_dir = last_json_line(trained[0])["run_dir"]
    out = tmp_path / "exported" / "classifier.keras"

    result = tlcore_cli("export", run_dir, "--format", "keras", "--out", out, env=cli_env)

    assert_clean_success(result)
    assert str(out) in result.stdout
    assert out.is_file()
    assert json.loads((out.parent / "labels.json").read_text()) == ["circles", "squares", "stripes"]


def test_export_onnx_with_check_reports_the_parity_as_json(trained, cli_env, tmp_path):
    run_dir = last_json_line(trained[0])["run_dir"]
    out = tmp_path / "exported" / "classifier.onnx"

    result = tlcore_cli("export", run_dir, "--format", "onnx", "--out", out, "--check", "--json", env=cli_env)

    assert_clean_success(result)
    assert not result.stderr.strip(), result.stderr  # the converters' chatter is not for the user
    report = last_json_line(result)
    assert (report["format"], report["path"], report["pictures"], report["split"]) == (
        "onnx", str(out), _validation_count(run_dir), "val")
    assert report["agreement"] == 1.0 and report["flagged"] is False and report["differing"] == []
    assert 0.0 <= report["accuracy"] <= 1.0 and report["max_probability_difference"] < 1e-4
    assert report["size_bytes"] == out.stat().st_size and report["latency_ms"] > 0


def test_export_check_for_people_and_bundle(trained, cli_env, tmp_path):
    run_dir = last_json_line(trained[0])["run_dir"]

    checked = tlcore_cli("export", run_dir, "--format", "tflite", "--check", env=cli_env)
    bundled = tlcore_cli("bundle", run_dir, "--formats", "tflite", "--out", tmp_path / "b.zip", "--json", env=cli_env)

    assert_clean_success(checked)
    count = _validation_count(run_dir)
    assert f"agrees with the app on 100.0% of them ({count}/{count})" in checked.stdout
    assert_clean_success(bundled)
    bundle = last_json_line(bundled)
    assert bundle["path"] == str(tmp_path / "b.zip") and bundle["formats"] == ["tflite"]
    assert [report["agreement"] for report in bundle["reports"]] == [1.0]


# ----------------------------------------------------------------- commands without TensorFlow


def test_backbones_json(keras_weights_home):
    result = tlcore_cli("backbones", "--json")

    assert_clean_success(result)
    rows = last_json_line(result)
    assert isinstance(rows, list) and len(rows) >= 13
    for row in rows:
        assert isinstance(row["name"], str)
        assert isinstance(row["available_offline"], bool)
        assert isinstance(row["params"], int)
        assert isinstance(row["input_size"], int)
    offline = {row["name"] for row in rows if row["available_offline"]}
    here = {row["name"] for row in rows if (keras_weights_home / row["weights_file"]).is_file()}
    assert offline == here and {"mobilenet_025", "mobilenetv2_035"} <= offline
    ranked = sorted((row for row in rows if row["preset_rank"] is not None), key=lambda row: row["preset_rank"])
    assert [row["name"] for row in ranked] == ["mobilenetv2_100", "mobilenetv2_035", "mobilenet_025"]
    assert all(row["download_mb"] > 0 for row in rows)


def test_backbones_table_for_people():
    result = tlcore_cli("backbones")

    assert_clean_success(result)
    assert "mobilenetv2_035" in result.stdout and "efficientnetb0" in result.stdout


def test_audit_json(tiny_dataset):
    (tiny_dataset / "stripes" / "notes.jpg").write_text("not an image")

    result = tlcore_cli("audit", tiny_dataset, "--json")

    assert_clean_success(result)
    report = last_json_line(result)
    assert report["class_names"] == ["circles", "squares", "stripes"]
    assert report["counts"]["circles"] == {"train": 6, "val": 2, "test": 0}
    assert [item["relative"] for item in report["skipped"]] == ["stripes/notes.jpg"]


def test_audit_for_people_lists_skipped_files(tiny_dataset):
    (tiny_dataset / "stripes" / "notes.jpg").write_text("not an image")

    result = tlcore_cli("audit", tiny_dataset)

    assert_clean_success(result)
    assert "skipped stripes/notes.jpg" in result.stdout


def test_runs_json_with_no_runs_is_an_empty_list(tmp_path):
    result = tlcore_cli("runs", "--runs-dir", tmp_path / "none", "--json")

    assert_clean_success(result)
    assert last_json_line(result) == []


def test_stop_writes_the_stop_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, {"data": "x"})
    run_record.write_status(run_dir, "running", "training")

    result = tlcore_cli("stop", run_dir)

    assert_clean_success(result)
    assert (run_dir / run_folder.STOP_FILE).is_file()
    assert "stop requested" in result.stdout


def test_weights_import_makes_a_backbone_available_offline(keras_weights_home, tmp_path):
    downloaded = tmp_path / "mobilenet_2_5_224_tf_no_top.h5"
    (keras_weights_home / downloaded.name).rename(downloaded)

    result = tlcore_cli("weights", "import", downloaded, "--for-everyone")

    assert_clean_success(result)
    assert (paths.own_weights_dir() / downloaded.name).is_file(), "Keras publishes no hash for it: not for everyone"
    assert not (keras_weights_home / downloaded.name).exists()
    assert "never installed for everyone" in result.stdout
    listed = last_json_line(tlcore_cli("backbones", "--json"))
    assert {row["name"]: row["available_offline"] for row in listed}["mobilenet_025"] is True


# ----------------------------------------------------------------- bad input: exit 2, one line, no traceback


BAD_INPUT_CASES = (
    "missing path", "file instead of folder", "empty folder", "one class", "unknown backbone", "zero epochs",
    "negative learning rate", "text for a number", "unknown freeze block", "unknown subcommand", "missing argument",
    "no subcommand", "audit of a missing folder", "stop a folder that is not a run",
    "evaluate a folder that is not a run", "predict a file that is not an image", "export to an unknown format",
    "bundle without formats",
)


def _bad_input_cases(root: pathlib.Path, dataset: pathlib.Path, one_class: pathlib.Path, run_dir: str) -> dict:
    """{case: (arguments, words the error line must contain)}."""
    (root / "empty").mkdir()
    not_a_run = root / "not_a_run"
    not_a_run.mkdir()
    not_an_image = root / "notes.jpg"
    not_an_image.write_text("not a picture")
    fast = ["--weights", "none", "--image-size", "32", "--runs-dir", root / "runs"]
    options = ["--runs-dir", root / "option_runs"]
    return {
        "missing path": (["train", root / "nowhere", *fast], ["nowhere", "does not exist"]),
        "file instead of folder": (["train", dataset / "squares" / "squares_00.png", *fast], ["is a file, not a folder"]),
        "empty folder": (["train", root / "empty", *fast], ["no class folders"]),
        "one class": (["train", one_class, *fast], ["'cats'", "at least 2 classes"]),
        "unknown backbone": (["train", dataset, "--backbone", "resnet9000", *options], ["resnet9000", "mobilenetv2_035"]),
        "zero epochs": (["train", dataset, "--epochs", "0", *options], ["epochs", "got 0"]),
        "negative learning rate": (["train", dataset, "--learning-rate", "-0.01", *options], ["learning_rate", "-0.01"]),
        "text for a number": (["train", dataset, "--epochs", "ten", *options], ["'ten'"]),
        "unknown freeze block": (["train", dataset, "--freeze", "block_99", *options], ["'block_99'", "block_16"]),
        "predict a file that is not an image": (["predict", run_dir, not_an_image], ["notes.jpg", "cannot classify"]),
        "export to an unknown format": (["export", run_dir, "--format", "tfjs", "--check"], ["'tfjs'", "onnx"]),
        "bundle without formats": (["bundle", run_dir, "--formats", ","], ["at least one format"]),
        "unknown subcommand": (["fly", dataset], ["'fly'", "train"]),
        "missing argument": (["train"], ["data", "required"]),
        "no subcommand": ([], ["required"]),
        "audit of a missing folder": (["audit", root / "nowhere"], ["does not exist"]),
        "stop a folder that is not a run": (["stop", not_a_run], ["not a tlcore run folder"]),
        "evaluate a folder that is not a run": (["evaluate", not_a_run], ["not a tlcore run folder"]),
    }


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory, cli_env, shared_tiny_dataset, image_writer, trained):
    """Every bad-input case run once, three processes at a time (some import TensorFlow)."""
    root = tmp_path_factory.mktemp("bad")
    one_class = image_writer(root / "one_class", {"cats": 3}, size=8)
    cases = _bad_input_cases(root, shared_tiny_dataset, one_class, last_json_line(trained[0])["run_dir"])
    assert set(cases) == set(BAD_INPUT_CASES)
    # Each case gets its own TLCORE_HOME: runs started side by side would find the training slot taken.
    envs = {name: {**cli_env, "TLCORE_HOME": str(root / "homes" / str(index))} for index, name in enumerate(cases)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(tlcore_cli, *args, env=envs[name]) for name, (args, _) in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    return cases, results, root


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_exits_2_with_one_error_line(bad_input_results, case):
    cases, results, _ = bad_input_results
    result = results[case]
    _, expected_words = cases[case]

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    assert lines[0].startswith("error: ")
    for word in expected_words:
        assert word in lines[0], f"{word!r} missing from {lines[0]!r}"


def test_bad_options_leave_no_run_folder(bad_input_results):
    # Options are checked before a run starts, so a typo does not litter the run history.
    _, _, root = bad_input_results

    assert not (root / "option_runs").exists() or run_history.list_runs(root / "option_runs") == []
