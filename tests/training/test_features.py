"""Tests for tlcore.features: cutting the model at the freeze boundary, cached features, same results.

The cut models are checked on a random-weight network whose BatchNormalization
statistics were calibrated (see conftest), so outputs really depend on the input.
"""

import json

import numpy as np
import pytest

from tlcore.model import folding
from tlcore.model.augmentation import make_augmentation
from tlcore.model.blocks import apply_freezing, backbone_blocks, parse_freeze
from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training.features import (
    FeatureBatches,
    FeaturePassStopped,
    allocate,
    compute_features,
    feature_batches,
    plan_feature_cache,
)
from tlcore.training.run import train


@pytest.fixture(scope="module")
def classifier(calibrated_classifier):
    """`classifier(backbone)`: one calibrated model per backbone, re-frozen by each test."""
    built = {}

    def get(backbone_name):
        if backbone_name not in built:
            built[backbone_name] = calibrated_classifier(backbone_name)
        return built[backbone_name]

    return get


def _freeze(parts, backbone_name, freeze):
    found = backbone_blocks(backbone_name, parts.backbone)
    apply_freezing(parts.backbone, found, parse_freeze(freeze, [block.name for block in found]))


def _cached_path(plan, images):
    """Probabilities through the two halves: what training on cached features computes."""
    return plan.top.predict(plan.prefix.predict(images, verbose=0), verbose=0)


@pytest.mark.parametrize(
    ("backbone_name", "freeze", "boundary", "feature_shape"),
    [
        ("mobilenetv2_035", "all", "after global pooling (whole backbone frozen)", (1280,)),
        ("mobilenetv2_035", "top:2", "before layer block_16_expand", (1, 1, 56)),
        ("mobilenetv2_035", "block_14,block_15,block_16,top", "before layer block_14_expand", (1, 1, 56)),
        ("mobilenet_025", "top:3", "before layer conv_dw_11", (2, 2, 128)),
    ],
)
def test_prefix_then_top_equals_the_whole_model(classifier, tiny_images, backbone_name, freeze, boundary, feature_shape):
    parts = classifier(backbone_name)
    _freeze(parts, backbone_name, freeze)
    images = tiny_images(per_class=3)

    plan = plan_feature_cache(parts)

    assert plan.boundary == boundary
    assert plan.feature_shape == feature_shape
    whole = parts.model.predict(images, verbose=0)
    assert whole.std(axis=0).max() > 1e-3, "the comparison needs outputs that depend on the image"
    np.testing.assert_allclose(_cached_path(plan, images), whole, atol=1e-5)


def test_top_shares_the_trainable_layers_with_the_whole_model(classifier):
    parts = classifier("mobilenet_025")
    _freeze(parts, "mobilenet_025", "top:1")

    plan = plan_feature_cache(parts)

    whole = {id(weight) for weight in parts.model.trainable_weights}
    assert {id(weight) for weight in plan.top.trainable_weights} == whole
    assert plan.prefix.trainable_weights == []


def test_no_cut_when_a_skip_connection_crosses_the_boundary(classifier):
    # Unfreezing the middle of MobileNetV2's residual block 14 leaves its shortcut
    # (from block 13) crossing the boundary: there is no single tensor to cache.
    parts = classifier("mobilenetv2_035")
    _freeze(parts, "mobilenetv2_035", "all")
    parts.backbone.trainable = True
    for layer in parts.backbone.layers:
        layer.trainable = layer.name in ("block_14_project", "block_16_project")

    assert plan_feature_cache(parts) is None


# ----------------------------------------------------------------- the feature pass


def test_compute_features_fills_the_output_and_logs_progress(classifier, tiny_images, tmp_path):
    parts = classifier("mobilenet_025")
    _freeze(parts, "mobilenet_025", "all")
    plan = plan_feature_cache(parts)
    images = tiny_images(per_class=3)
    output = np.zeros((9, *plan.feature_shape), dtype="float32")

    timing = compute_features(plan, [images[:4], images[4:8], images[8:]], 9, output, tmp_path, "train")

    assert timing.images == 9 and timing.images_per_s > 0
    assert timing.steady_images_per_s > 0 and 0 < timing.first_batch_s <= timing.seconds
    expected = plan.prefix.predict(images, verbose=0)
    # The pass runs the prefix with batch normalization folded (tlcore.folding): float32
    # rounding differs, and this random network's calibrated statistics amplify it.
    np.testing.assert_allclose(output, expected, atol=1e-3 * np.abs(expected).max())
    progress = [row for row in run_record.read_metrics(tmp_path) if row["type"] == "progress"]
    assert progress[-1]["done"] == 9 and progress[-1]["total"] == 9 and progress[-1]["split"] == "train"


@pytest.mark.parametrize("freeze", ["all", "top:2"])
def test_feature_pass_runs_the_folded_prefix_and_matches_the_prefix_model(classifier, tiny_images, tmp_path, monkeypatch,
                                                                           freeze):
    import keras

    made = []
    real = folding.inference_function
    monkeypatch.setattr(folding, "inference_function", lambda model: made.append(model) or real(model))
    parts = classifier("mobilenetv2_035")
    _freeze(parts, "mobilenetv2_035", freeze)
    plan = plan_feature_cache(parts)
    images = tiny_images(per_class=3)
    output = np.zeros((9, *plan.feature_shape), dtype="float32")

    compute_features(plan, [images[:4], images[4:]], 9, output, tmp_path, "train")

    if keras.backend.backend() == "tensorflow":
        assert made == [plan.prefix] and plan.folded  # the folded function traced, ran, and was kept
    expected = plan.prefix.predict(images, verbose=0)
    np.testing.assert_allclose(output, expected, atol=1e-3 * np.abs(expected).max())


def test_augmented_views_differ_from_the_plain_features(classifier, tiny_images, tmp_path):
    parts = classifier("mobilenet_025")
    _freeze(parts, "mobilenet_025", "all")
    plan = plan_feature_cache(parts)
    images = tiny_images(per_class=2)
    plain = np.zeros((6, *plan.feature_shape), dtype="float32")
    augmented = np.zeros_like(plain)

    compute_features(plan, [images], 6, plain, tmp_path, "train")
    compute_features(plan, [images], 6, augmented, tmp_path, "train", augmentation=make_augmentation("strong", seed=1))

    assert not np.allclose(plain, augmented)


def test_compute_features_stops_when_asked(classifier, tiny_images, tmp_path):
    parts = classifier("mobilenet_025")
    _freeze(parts, "mobilenet_025", "all")
    plan = plan_feature_cache(parts)
    (tmp_path / run_folder.STOP_FILE).write_text("stop")

    with pytest.raises(FeaturePassStopped):
        compute_features(plan, [tiny_images(per_class=1)], 3, np.zeros((3, 256), "float32"), tmp_path, "val")


def test_fixed_size_batches_give_the_same_features_for_any_count(classifier, tiny_images):
    from tlcore.training.features import _in_fixed_batches

    parts = classifier("mobilenetv2_035")
    _freeze(parts, "mobilenetv2_035", "all")
    plan = plan_feature_cache(parts)
    calls = []

    def predict(batch):
        calls.append(int(batch.shape[0]))
        return plan.prefix.predict_on_batch(batch)

    forward = _in_fixed_batches(predict, size=4)
    images = tiny_images()  # 12 images
    expected = plan.prefix.predict(images, verbose=0)

    for count in (1, 4, 10):
        np.testing.assert_allclose(forward(images[:count]), expected[:count], rtol=1e-3, atol=1e-4)
    assert set(calls) == {4}, "every forward call should see one batch shape"


def test_allocate_uses_memory_within_budget_and_a_file_beyond(tmp_path):
    in_memory = allocate((4, 8), tmp_path / "small.npy", on_disk=False)
    on_disk = allocate((4, 8), tmp_path / "big.npy", on_disk=True)

    assert not isinstance(in_memory, np.memmap) and not (tmp_path / "small.npy").exists()
    assert isinstance(on_disk, np.memmap) and (tmp_path / "big.npy").is_file()
    on_disk[:] = 1.0
    assert on_disk.shape == (4, 8) and on_disk.dtype == np.float32


# ----------------------------------------------------------------- FeatureBatches


def test_feature_batches_give_every_row_once_per_epoch_with_one_hot_labels():
    data = np.arange(10, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    batches = FeatureBatches(data, labels, num_classes=3, batch_size=4, shuffle=True, seed=1)

    assert len(batches) == 3
    seen = []
    for index in range(len(batches)):
        x, y = batches[index]
        rows = x[:, 0].astype(int)
        np.testing.assert_array_equal(y, np.eye(3)[labels[rows]])
        seen += list(rows)
    assert sorted(seen) == list(range(10))

    before = batches.order.copy()
    batches.on_epoch_end()
    assert not np.array_equal(before, batches.order)
    again = FeatureBatches(data, labels, 3, 4, shuffle=True, seed=1)
    np.testing.assert_array_equal(again.order, before)


def test_feature_batches_without_shuffle_keep_order_and_add_sample_weights():
    data = np.arange(5, dtype="float32")[:, None]
    labels = np.array([0, 0, 0, 1, 1])

    batches = FeatureBatches(data, labels, 2, 5, shuffle=False, seed=0, sample_weights=np.array([0.5, 2.0], "float32"))

    x, y, weights = batches[0]
    np.testing.assert_array_equal(x[:, 0], np.arange(5))
    np.testing.assert_array_equal(weights, [0.5, 0.5, 0.5, 2.0, 2.0])


def test_feature_batches_pick_one_augmented_view_per_image():
    views = np.stack([np.full((6, 1), view, "float32") for view in range(4)])  # (views, N, 1)
    labels = np.zeros(6, dtype=int)

    batches = FeatureBatches(views, labels, 2, 6, shuffle=False, seed=3, has_views=True)

    x, _ = batches[0]
    assert x.shape == (6, 1)
    np.testing.assert_array_equal(x[:, 0], batches.views)
    assert len(set(batches.views)) > 1


def _epoch(dataset):
    """One pass over a tf.data feature dataset, as numpy tuples per batch."""
    return [tuple(np.asarray(part) for part in batch) for batch in dataset]


def test_in_memory_feature_batches_give_every_row_once_per_epoch_reshuffled_and_seeded():
    data = np.arange(10, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])

    dataset = feature_batches(data, labels, num_classes=3, batch_size=4, shuffle=True, seed=1)

    orders = []
    for _ in range(2):
        batches = _epoch(dataset)
        assert [len(x) for x, _ in batches] == [4, 4, 2]
        rows = np.concatenate([x[:, 0] for x, _ in batches]).astype(int)
        targets = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(targets, np.eye(3)[labels[rows]])
        assert sorted(rows) == list(range(10))
        orders.append(list(rows))
    assert orders[0] != orders[1]
    again = feature_batches(data, labels, 3, 4, shuffle=True, seed=1)
    assert list(np.concatenate([x[:, 0] for x, _ in _epoch(again)]).astype(int)) == orders[0]


def test_in_memory_feature_batches_pick_a_fresh_view_per_image_each_epoch():
    count, views = 6, 4
    # (views, N, 1): the value tells both the image (tens) and the view (units).
    data = np.stack([np.arange(count, dtype="float32")[:, None] * 10 + view for view in range(views)])
    labels = np.array([0, 0, 0, 1, 1, 1])

    dataset = feature_batches(data, labels, 2, 6, shuffle=False, seed=3, sample_weights=np.array([0.5, 2.0]),
                              has_views=True)

    picked = []
    for _ in range(3):
        ((x, y, weights),) = _epoch(dataset)
        assert x.shape == (count, 1)
        np.testing.assert_array_equal(x[:, 0] // 10, np.arange(count))  # every image once, in order
        np.testing.assert_array_equal(weights, [0.5, 0.5, 0.5, 2.0, 2.0, 2.0])
        np.testing.assert_array_equal(y, np.eye(2)[labels])
        picked.append(tuple((x[:, 0] % 10).astype(int)))
    assert all(0 <= view < views for views_seen in picked for view in views_seen)
    assert len(set(picked)) > 1, "every epoch picked the same views"
    assert len(set(picked[0])) > 1, "every image got the same view"


# ----------------------------------------------------------------- whole runs: cached vs plain


@pytest.fixture(scope="module")
def cached_and_plain_runs(shared_tiny_dataset, tiny_config, install_keras_weights, tmp_path_factory):
    """The same run with and without the feature cache.

    With the shared ImageNet weights (when present) the tiny colour classes are
    learnable, so the accuracies compared mean something; without them both
    runs use random weights and only the run folders are compared.
    """
    keras_home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(keras_home))
        weights = "imagenet" if install_keras_weights(keras_home) else "none"
        results = {}
        for feature_cache in ("auto", "off"):
            config = tiny_config(shared_tiny_dataset, epochs=3, weights=weights, feature_cache=feature_cache, seed=3)
            results[feature_cache] = train(config, runs_dir=tmp_path_factory.mktemp(f"runs_{feature_cache}"))
    return weights, results


def test_feature_cache_and_plain_path_leave_the_same_run_folder(cached_and_plain_runs):
    _, results = cached_and_plain_runs
    cached, plain = results["auto"], results["off"]

    assert cached.feature_cache.startswith("on") and plain.feature_cache == "off"
    assert cached.status == plain.status == "completed"
    assert cached.epochs_run == plain.epochs_run == 3
    files = {name: sorted(p.name for p in run_folder.require_run_dir(r.run_dir).iterdir()) for name, r in results.items()}
    assert files["auto"] == files["off"]
    for result in (cached, plain):
        evaluation = json.loads((run_folder.require_run_dir(result.run_dir) / run_folder.EVALUATION_FILE).read_text())
        assert evaluation["val"]["images"] == 6


def test_feature_cache_and_plain_path_reach_similar_accuracy(cached_and_plain_runs):
    weights, results = cached_and_plain_runs
    cached, plain = results["auto"], results["off"]

    # 6 validation images: allow two of them to differ.
    assert abs(cached.val_accuracy - plain.val_accuracy) <= 2 / 6 + 1e-9
    if weights == "imagenet":
        assert min(cached.val_accuracy, plain.val_accuracy) >= 0.66
    rows = {name: run_record.epoch_rows(r.run_dir) for name, r in results.items()}
    assert [row["epoch"] for row in rows["auto"]] == [row["epoch"] for row in rows["off"]]


def test_features_beyond_the_memory_budget_go_to_a_file_that_is_removed_afterwards(
    shared_tiny_dataset, tiny_config, tmp_path, monkeypatch
):
    from tlcore.training import feature_cache, features

    monkeypatch.setattr(feature_cache, "MEMORY_BUDGET_BYTES", 1)
    seen = []
    original = features.allocate
    monkeypatch.setattr(features, "allocate", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    result = train(tiny_config(shared_tiny_dataset, epochs=2), runs_dir=tmp_path / "runs")
    assert result.status == "completed"
    assert "on disk" in result.feature_cache
    assert seen and all(isinstance(array, np.memmap) for array in seen)
    assert not list(run_folder.require_run_dir(result.run_dir).glob("features_*.npy"))


def test_features_beyond_the_disk_budget_fall_back_to_the_plain_path_and_say_so(
    shared_tiny_dataset, tiny_config, tmp_path, monkeypatch
):
    from tlcore.training import feature_cache

    monkeypatch.setattr(feature_cache, "DISK_BUDGET_BYTES", 1)
    result = train(tiny_config(shared_tiny_dataset, epochs=2), runs_dir=tmp_path / "runs")
    assert result.status == "completed"
    assert result.feature_cache.startswith("off (features would need")
    assert run_record.read_status(result.run_dir)["feature_cache"] == result.feature_cache


def test_images_beyond_the_decode_budget_stream_from_files(shared_tiny_dataset, tiny_config, tmp_path, monkeypatch):
    from tlcore.training import pipeline

    monkeypatch.setattr(pipeline, "DEFAULT_DECODE_CACHE_BYTES", 0)
    result = train(tiny_config(shared_tiny_dataset, epochs=2, feature_cache="off"), runs_dir=tmp_path / "runs")
    assert result.status == "completed" and result.epochs_run == 2


def test_pictures_streamed_once_for_the_feature_pass_are_not_kept_in_tf_datas_cache(shared_tiny_dataset, tiny_config,
                                                                                     tmp_path, monkeypatch):
    from tlcore.training import pipeline

    monkeypatch.setattr(pipeline, "decoded_bytes", lambda *args: 10**15)  # too many to decode ahead: stream from the files
    made = []
    original = pipeline.make_dataset
    monkeypatch.setattr(pipeline, "make_dataset", lambda *args, **kwargs: made.append(kwargs) or original(*args, **kwargs))

    result = train(tiny_config(shared_tiny_dataset, epochs=1), runs_dir=tmp_path / "runs")

    assert result.status == "completed" and result.feature_cache.startswith("on")
    assert made and all(kwargs["cache_bytes"] == 0 for kwargs in made), made
