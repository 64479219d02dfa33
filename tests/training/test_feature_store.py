"""The store of frozen-layer features between runs: exact reuse, never stale, bounded, never fatal."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from tlcore.runs import folder as run_folder
from tlcore.runs import record as run_record
from tlcore.training import feature_store
from tlcore.training.feature_store import FeatureStore, evict_least_recently_used, image_identity, prefix_key
from tlcore.training.run import train


def rows(*values, width=3):
    return np.array([[value] * width for value in values], dtype="float32")


# ----------------------------------------------------------------- the store itself


def test_lookup_gives_the_rows_in_the_order_asked_and_only_when_all_are_stored(tmp_path):
    store = FeatureStore("key", tmp_path)
    assert store.add(["a", "b", "c"], rows(1, 2, 3))

    again = FeatureStore("key", tmp_path)  # a later run reads it from disk
    np.testing.assert_array_equal(again.lookup(["c", "a"]), rows(3, 1))
    assert again.lookup(["a", "d"]) is None
    assert again.lookup([]) is None
    assert FeatureStore("other key", tmp_path).lookup(["a"]) is None


def test_adding_keeps_other_images_and_replaces_the_same_ones(tmp_path):
    store = FeatureStore("key", tmp_path)
    store.add(["a", "b"], rows(1, 2))
    store.add(["b", "c"], rows(20, 30))

    np.testing.assert_array_equal(FeatureStore("key", tmp_path).lookup(["a", "b", "c"]), rows(1, 20, 30))


def test_adding_more_images_than_are_kept_keeps_every_row(tmp_path):
    store = FeatureStore("key", tmp_path)
    store.add(["a", "b"], rows(1, 2))
    assert store.add(["c", "d", "e"], rows(3, 4, 5))  # two kept rows, five in all: once failed to broadcast

    np.testing.assert_array_equal(FeatureStore("key", tmp_path).lookup(["a", "b", "c", "d", "e"]), rows(1, 2, 3, 4, 5))


def test_features_over_the_budget_are_not_written(tmp_path):
    store = FeatureStore("key", tmp_path, budget_bytes=2 * 3 * 4)
    assert not store.add(["a", "b", "c"], rows(1, 2, 3))
    assert FeatureStore("key", tmp_path).lookup(["a"]) is None


def test_features_are_kept_only_within_the_space_the_operator_lets_the_user_fill(monkeypatch):
    from tlcore import paths

    monkeypatch.setenv("TLCORE_MAX_UPLOAD_MB", "0.1")  # 100 KB: kept features count against it
    with paths.as_user("ann"):
        store = FeatureStore("key")
        assert not store.add([f"image-{index}" for index in range(100)], rows(*range(100), width=1000))  # 400 KB
        assert store.add(["a", "b"], rows(1, 2, width=1000))  # 8 KB

        assert FeatureStore("key").lookup(["a", "b"]) is not None
        assert FeatureStore("key").lookup(["image-0"]) is None


def test_when_old_and_new_images_exceed_the_budget_the_new_ones_are_kept(tmp_path):
    store = FeatureStore("key", tmp_path, budget_bytes=2 * 3 * 4)
    assert store.add(["a", "b"], rows(1, 2))
    assert store.add(["c"], rows(3))  # three rows would not fit

    again = FeatureStore("key", tmp_path)
    np.testing.assert_array_equal(again.lookup(["c"]), rows(3))
    assert again.lookup(["a"]) is None


def test_least_recently_used_entries_go_first_when_over_budget(tmp_path):
    for index, key in enumerate(["old", "used", "new"]):
        FeatureStore(key, tmp_path).add([key], rows(index, width=1000))
        os.utime(tmp_path / key / feature_store.ENTRY_FILE, (1000 + index, 1000 + index))
    FeatureStore("used", tmp_path).lookup(["used"])  # a hit makes it recent
    budget = sum(feature_store._folder_bytes(tmp_path / key) for key in ("used", "new"))

    evict_least_recently_used(tmp_path, budget_bytes=budget)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["new", "used"]
    assert feature_store.stored_bytes(tmp_path) <= budget


def test_a_rewritten_entry_keeps_only_its_current_files(tmp_path):
    store = FeatureStore("key", tmp_path)
    store.add(["a"], rows(1))
    store.add(["b"], rows(2))
    names = sorted(path.name.split("-")[0] for path in (tmp_path / "key").iterdir())
    assert names == ["entry.json", "features", "identities"]


def test_a_damaged_entry_counts_as_missing_and_is_removed(tmp_path):
    FeatureStore("key", tmp_path).add(["a"], rows(1))
    next((tmp_path / "key").glob("features-*.npy")).write_bytes(b"half a file")

    store = FeatureStore("key", tmp_path)
    assert store.lookup(["a"]) is None
    assert not (tmp_path / "key").exists()
    assert store.add(["a"], rows(1))  # and the next run writes it afresh
    np.testing.assert_array_equal(FeatureStore("key", tmp_path).lookup(["a"]), rows(1))


def test_an_unreadable_pointer_counts_as_missing(tmp_path):
    FeatureStore("key", tmp_path).add(["a"], rows(1))
    (tmp_path / "key" / feature_store.ENTRY_FILE).write_text("{not json")

    assert FeatureStore("key", tmp_path).lookup(["a"]) is None
    assert FeatureStore("key", tmp_path).add(["a"], rows(1))


def test_a_failed_write_is_ignored_and_leaves_nothing_behind(tmp_path, monkeypatch):
    store = FeatureStore("key", tmp_path)
    store.add(["a"], rows(1))

    original = np.lib.format.open_memmap

    def disk_full_for_writing(*args, mode="r+", **kwargs):
        if mode == "w+":
            raise OSError(28, "No space left on device")
        return original(*args, mode=mode, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", disk_full_for_writing)
    assert store.add(["b"], rows(2)) is False
    monkeypatch.undo()
    assert sorted(path.name.split("-")[0] for path in (tmp_path / "key").iterdir()) == ["entry.json", "features", "identities"]
    np.testing.assert_array_equal(FeatureStore("key", tmp_path).lookup(["a"]), rows(1))


def test_rows_of_several_arrays_read_as_one_by_slices():
    joined = feature_store.ConcatenatedRows([rows(1, 2, 3), rows(4), rows(5, 6)])
    assert len(joined) == 6 and joined.shape == (6, 3)
    np.testing.assert_array_equal(joined[0:6], rows(1, 2, 3, 4, 5, 6))
    np.testing.assert_array_equal(joined[2:5], rows(3, 4, 5))
    np.testing.assert_array_equal(joined[5:100], rows(6))
    store_rows = np.zeros((0, 3), dtype="float32")
    np.testing.assert_array_equal(joined[6:8], store_rows)


def test_an_image_is_known_by_path_size_and_modification_time(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"x" * 10)
    first = image_identity(image)
    assert image_identity(tmp_path / "." / "a.png") == first
    os.utime(image, ns=(10**18, 10**18))
    assert image_identity(image) != first
    touched = image_identity(image)
    image.write_bytes(b"y" * 11)
    os.utime(image, ns=(10**18, 10**18))
    assert image_identity(image) != touched


def test_the_key_changes_with_any_weight_and_with_the_cut(tmp_path):
    def prefix(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    key = prefix_key(prefix(1), "mobilenetv2_035", "after global pooling")
    assert prefix_key(prefix(1), "mobilenetv2_035", "after global pooling") == key
    assert prefix_key(prefix(2), "mobilenetv2_035", "after global pooling") != key
    assert prefix_key(prefix(1), "mobilenetv2_035", "before layer block_16_expand") != key
    changed = prefix(1)
    weights = changed.get_weights()
    weights[1][0] += 1e-6
    changed.set_weights(weights)
    assert prefix_key(changed, "mobilenetv2_035", "after global pooling") != key


# ----------------------------------------------------------------- whole runs


def feature_rows(result):
    return [row for row in run_record.read_metrics(result.run_dir) if row.get("type") == "feature_pass"]


def feature_progress(result):
    return [row for row in run_record.read_metrics(result.run_dir) if row.get("phase") == "features"]


@pytest.fixture
def own_dataset(shared_tiny_dataset, tmp_path):
    """A copy of the tiny dataset this test may change."""
    return shutil.copytree(shared_tiny_dataset, tmp_path / "data")


def test_a_second_run_reuses_the_features_and_learns_exactly_the_same(own_dataset, tiny_config, tmp_path):
    config = tiny_config(own_dataset, epochs=3, seed=5)
    first = train(config, runs_dir=tmp_path / "runs")
    second = train(config, runs_dir=tmp_path / "runs")

    assert "reused" not in first.feature_cache and feature_progress(first)
    assert second.feature_cache.endswith("features of 24 images reused from an earlier run")
    assert not feature_progress(second), "no image went through the frozen part again"
    assert all(row["reused"] for row in feature_rows(second))
    for one, two in zip(run_record.epoch_rows(first.run_dir), run_record.epoch_rows(second.run_dir), strict=True):
        assert two["val_loss"] == pytest.approx(one["val_loss"], abs=1e-5)
        assert two["val_accuracy"] == one["val_accuracy"]
    files = [sorted(path.name for path in run_folder.require_run_dir(r.run_dir).iterdir()) for r in (first, second)]
    assert files[0] == files[1]
    evaluation = json.loads((run_folder.require_run_dir(second.run_dir) / run_folder.EVALUATION_FILE).read_text())
    validation = run_folder.read_json(run_folder.require_run_dir(second.run_dir) / run_folder.SPLIT_FILE)["val"]
    assert evaluation["val"]["images"] == len(validation)


def test_an_edited_image_is_computed_again(own_dataset, tiny_config, tmp_path):
    config = tiny_config(own_dataset, epochs=1, seed=5)
    first = train(config, runs_dir=tmp_path / "runs")
    validation = run_folder.read_json(run_folder.require_run_dir(first.run_dir) / run_folder.SPLIT_FILE)["val"]
    edited = own_dataset / validation[0][0]
    edited.write_bytes(edited.read_bytes())  # same pixels, new modification time
    os.utime(edited, ns=(edited.stat().st_mtime_ns + 10**9,) * 2)

    second = train(config, runs_dir=tmp_path / "runs")

    reused = {row["split"]: row.get("reused", False) for row in feature_rows(second)}
    assert reused == {"train": True, "val": False}
    training = run_folder.read_json(run_folder.require_run_dir(first.run_dir) / run_folder.SPLIT_FILE)["train"]
    assert second.feature_cache.endswith(f"features of {len(training)} images reused from an earlier run")


def test_augmented_views_are_never_reused_but_validation_features_are(own_dataset, tiny_config, tmp_path):
    config = tiny_config(own_dataset, epochs=1, augment="light", seed=5)
    train(config, runs_dir=tmp_path / "runs")
    second = train(config, runs_dir=tmp_path / "runs")

    reused = {(row["split"], row["view"]): row.get("reused", False) for row in feature_rows(second)}
    assert reused[("val", 0)] is True
    assert not any(value for (split, _), value in reused.items() if split == "train")


def test_with_the_feature_cache_off_nothing_is_stored(own_dataset, tiny_config, tmp_path):
    train(tiny_config(own_dataset, epochs=1, feature_cache="off"), runs_dir=tmp_path / "runs")
    assert feature_store.stored_bytes() == 0


def test_a_store_that_fails_in_every_way_never_fails_the_run(own_dataset, tiny_config, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("no memory for the store")

    monkeypatch.setattr(FeatureStore, "lookup", broken)
    monkeypatch.setattr(FeatureStore, "add", broken)
    result = train(tiny_config(own_dataset, epochs=1), runs_dir=tmp_path / "runs")
    assert result.status == "completed" and result.feature_cache.startswith("on:")


# ----------------------------------------------------------------- the Train page's hint


def test_an_entry_carries_a_label_the_train_page_can_match_without_tensorflow(tmp_path):
    label = feature_store.entry_label("mobilenetv2_035", 224, {"block_16", "top"})
    FeatureStore("key", tmp_path, label=label).add(["a", "b"], rows(1, 2))

    assert label["lowest_trainable_block"] == "block_16" and label["image_size"] == 224
    assert feature_store.kept_images(label, ["a", "b", "c"], tmp_path) == 2
    assert feature_store.kept_images({**label, "image_size": 160}, ["a", "b"], tmp_path) == 0
    assert feature_store.entry_label("mobilenetv2_035", 224, set())["lowest_trainable_block"] is None


def test_the_hint_never_fails_on_a_damaged_store(tmp_path):
    label = feature_store.entry_label("mobilenetv2_035", 224, set())
    FeatureStore("key", tmp_path, label=label).add(["a"], rows(1))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / feature_store.ENTRY_FILE).write_text("{not json")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / feature_store.ENTRY_FILE).write_text(json.dumps({"version": "x", "label": label}))

    assert feature_store.kept_images(label, ["a"], tmp_path) == 1


def test_the_hint_counts_what_a_run_kept_for_the_same_cut(own_dataset, tiny_config, tmp_path):
    from tlcore.data.audit import audit_dataset

    config = tiny_config(own_dataset, epochs=1, seed=5)
    audit = audit_dataset(config.data, config.val_split, config.seed, find_duplicates=False)
    assert feature_store.kept_for_run(config, audit) == 0

    train(config, runs_dir=tmp_path / "runs")

    validation = len(audit.split_records("val"))
    assert feature_store.kept_for_run(config, audit) == 24  # every training and validation picture
    assert feature_store.kept_for_run(tiny_config(own_dataset, augment="light"), audit) == validation  # views are not kept
    assert feature_store.kept_for_run(tiny_config(own_dataset, freeze="top:2"), audit) == 0  # another cut
    assert feature_store.kept_for_run(tiny_config(own_dataset, image_size=48), audit) == 0
