"""Grad-CAM heatmaps: they point where the evidence is, they are kept in the run folder, and the CLI writes them.

The sanity check trains a small run (real ImageNet weights, frozen, 144 px) on
pictures whose class is set only by a coloured patch in the top-left corner
(red or blue) on a random grey background: the heatmap's peak must lie in that corner.
"""

import json

import numpy as np
import pytest
from conftest import save_image, smooth_picture
from PIL import Image

import tlcore.results.prediction
from tlcore.cli.main import main
from tlcore.model.build import build_classifier
from tlcore.results import doubt
from tlcore.results.explain import EXPLANATIONS_DIR, explain_files, explainer_for, grad_cam, last_conv_layer
from tlcore.training.config import TrainConfig
from tlcore.training.run import train

SIZE = 144  # not a size with its own weights file, so the 224 px weights are used; a 5x5 feature map
PATCH = 44
COLOURS = {"red_corner": (235, 25, 25), "blue_corner": (25, 25, 235)}


def corner_picture(label: str, index: int) -> Image.Image:
    """A grey random background (no colour anywhere else) with the class's colour in the top-left corner."""
    picture = smooth_picture(1000 * len(label) + index, size=(SIZE, SIZE)).convert("L").convert("RGB")
    picture.paste(Image.new("RGB", (PATCH, PATCH), COLOURS[label]), (0, 0))
    return picture


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory, install_keras_weights):
    """A trained run whose two classes differ only in the colour of the top-left corner."""
    root = tmp_path_factory.mktemp("corner")
    data = root / "corners"
    for label in COLOURS:
        for index in range(12):
            save_image(data, f"{label}/{index:02d}.png", corner_picture(label, index))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(root / "keras"))
        patch.setenv("TLCORE_HOME", str(root / "home"))
        if install_keras_weights(root / "keras") is None:
            pytest.skip("needs the offline ImageNet weights in <repo>/../shared/keras-weights, which are absent")
        config = TrainConfig(data=str(data), image_size=SIZE, epochs=8, early_stopping_patience=0, reduce_lr_patience=0,
                             learning_rate=0.01, val_split=0.25)
        result = train(config, runs_dir=root / "runs")
        split = json.loads((root / "runs" / result.run_dir.split("/")[-1] / "split.json").read_text())
        yield result.run_dir, [entry[2] for entry in split["val"]], root / "home"


def test_the_heatmaps_peak_lies_in_the_corner_that_sets_the_class(corner_run, monkeypatch):
    run_dir, val_files, home = corner_run
    monkeypatch.setenv("TLCORE_HOME", str(home))

    explanations = explain_files(run_dir, val_files)

    assert [item.predicted for item in explanations] == [file.split("/")[-2] for file in val_files]
    for item in explanations:
        row, column = item.peak()
        assert row < 0.4 and column < 0.4, (item.file, item.peak(), np.round(item.heatmap, 2))
        assert item.heatmap.shape == (5, 5) and item.layer == "out_relu"
        assert item.overlay_png.startswith(b"\x89PNG")


def test_heatmaps_are_kept_in_the_run_folder_and_read_back_without_the_model(corner_run, monkeypatch):
    run_dir, val_files, home = corner_run
    monkeypatch.setenv("TLCORE_HOME", str(home))
    first = explain_files(run_dir, val_files[:2])

    def no_model(*args):
        raise AssertionError("the model was loaded although the heatmaps were kept")

    monkeypatch.setattr(tlcore.results.prediction, "load_run_model", no_model)
    again = explain_files(run_dir, val_files[:2])

    assert [item.path for item in again] == [item.path for item in first]
    assert all(str(run_dir) in item.path and EXPLANATIONS_DIR in item.path for item in again)
    np.testing.assert_allclose(again[0].heatmap, first[0].heatmap, atol=1e-4)


def test_explain_on_the_command_line_writes_pngs_and_lists_them(corner_run, monkeypatch, tmp_path, capsys):
    run_dir, val_files, home = corner_run
    monkeypatch.setenv("TLCORE_HOME", str(home))

    code = main(["explain", run_dir, *val_files[:2], "--out", str(tmp_path / "maps"), "--json"])

    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and len(listed) == 2
    assert all((tmp_path / "maps" / (item["file"].split("/")[-1].rsplit(".", 1)[0] + ".heatmap.png")).is_file()
               for item in listed)
    assert {"predicted", "probability", "peak", "heatmap", "unfamiliar"} <= set(listed[0])
    assert listed[0]["unfamiliar"] is False  # a picture like the training ones


def test_explain_of_a_file_that_is_not_a_picture_is_exit_2(corner_run, monkeypatch, tmp_path, capsys):
    run_dir, _, home = corner_run
    monkeypatch.setenv("TLCORE_HOME", str(home))
    (tmp_path / "notes.jpg").write_text("not a picture")

    code = main(["explain", run_dir, str(tmp_path / "notes.jpg"), "--out", str(tmp_path / "maps"), "--json"])

    output = capsys.readouterr()
    assert code == 2 and output.err.startswith("error: cannot classify")
    assert json.loads(output.out.strip().splitlines()[-1])["exit_code"] == 2


# ----------------------------------------------------------------- the explainer on other backbones


@pytest.mark.parametrize("backbone, size", [("mobilenetv3_small", 64), ("vgg16", 64)])
def test_the_last_feature_map_is_found_in_backbones_of_other_shapes(backbone, size):
    """Its own rescaling inside (MobileNetV3), a pooling layer last and no BN (VGG16).

    Every backbone of the table: `python benchmarks/explain_backbones.py` (a few minutes).
    """
    parts = build_classifier(backbone, 2, size, weights=None, seed=0)
    explainer, layer = explainer_for(parts.model)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")

    feature_map, features = explainer(images, training=False)
    maps, probabilities, pooled, _ = grad_cam(parts.model, images, compiled=False)  # one call: no graph to trace

    assert layer == last_conv_layer(parts.backbone).name and len(feature_map.shape) == 4
    assert maps.shape == (2, *feature_map.shape[1:3]) and np.isfinite(maps).all() and maps.max() <= 1
    np.testing.assert_allclose(probabilities, parts.model(images, training=False), atol=1e-4)
    assert pooled.shape == (2, features.shape[-1])


# ----------------------------------------------------------------- the doubt rule's arithmetic


def test_doubt_fires_far_from_every_training_picture_and_not_among_them():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 32))
    training = np.concatenate([centre + 0.3 * rng.normal(size=(40, 32)) for centre in centres])
    facts, reference = doubt.build_reference(training, ["a", "b", "c"])
    familiar = centres[1] + 0.3 * rng.normal(size=(20, 32))
    strange = rng.normal(size=(20, 32))

    assert sum(item.unfamiliar for item in doubt.assess(facts, reference, familiar)) <= 1
    assert all(item.unfamiliar and item.reason for item in doubt.assess(facts, reference, strange))
