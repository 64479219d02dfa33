"""Imported weights: untrained files refused, each user's imports their own, only a teacher's verified file for everyone.

The attack these reproduce: a student imports a MobileNetV2 1.0 file of random
weights (every BatchNorm variance still 1.0) on the Model page; it went into
the Keras home every account shares, and every student's run on that backbone
scored at chance.

The files here are tiny HDF5 files in the layout Keras's legacy writer makes
(a group per layer, `layer/layer/moving_variance` datasets), written with h5py;
loading into a real backbone (the memory-capped child process) is tested in
test_backbones.py, and is replaced here by a recorder so each test takes
well under a second.
"""

from __future__ import annotations

import hashlib
import pathlib

import h5py
import numpy as np
import pytest

from tlcore import paths
from tlcore.classroom import accounts
from tlcore.errors import InputError, NotAllowedError, WeightsUnavailableError
from tlcore.model import backbones, weights_check, weights_import
from tlcore.model.backbones import cached_weights_path, keras_cache_dir, own_weights_dir

MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
SHARED_MOBILENET_V2 = pathlib.Path("/work/shared/keras-weights") / MOBILENET_V2
BATCH_NORM_LAYERS = ("bn_Conv1", "block_1_expand_BN", "block_1_depthwise_BN", "Conv_1_bn")


def write_legacy_weights(path: pathlib.Path, trained: bool, seed: int = 0) -> pathlib.Path:
    """A small weights file in Keras's legacy HDF5 layout: a kernel, and BatchNorm layers with their statistics.

    Untrained: the statistics a new BatchNormalization layer starts with (mean 0, variance 1).
    """
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([b"Conv1", *(name.encode() for name in BATCH_NORM_LAYERS)])
        handle.create_dataset("Conv1/Conv1/kernel", data=rng.normal(size=(3, 3, 3, 8)).astype("float32"))
        for name in BATCH_NORM_LAYERS:
            group = handle.create_group(f"{name}/{name}")
            group["gamma"] = rng.normal(1.0, 0.1, 8).astype("float32")
            group["beta"] = rng.normal(0.0, 0.1, 8).astype("float32")
            group["moving_mean"] = rng.normal(0.0, 1.0, 8).astype("float32") if trained else np.zeros(8, "float32")
            group["moving_variance"] = rng.uniform(0.1, 3.0, 8).astype("float32") if trained else np.ones(8, "float32")
    return path


@pytest.fixture
def loads_in_backbone(monkeypatch):
    """Record the memory-capped load into the backbone instead of starting TensorFlow in a child process."""
    loaded = []
    monkeypatch.setattr(weights_import, "_load_in_child_process", lambda source, spec, size: loaded.append(source.name))
    return loaded


@pytest.fixture
def classroom(monkeypatch):
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts.add_user("mr-lee", "teacher password", teacher=True)
    accounts.add_user("ann", "ann's password")
    accounts.add_user("bo", "bo's password")


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------- untrained weights


def test_a_file_whose_batch_norm_statistics_never_moved_is_refused_in_words(tmp_path, loads_in_backbone):
    untrained = write_legacy_weights(tmp_path / MOBILENET_V2, trained=False)

    with pytest.raises(InputError) as caught:
        weights_import.import_weights(untrained)

    message = str(caught.value)
    assert "untrained weights" in message and "4 of its 4 BatchNorm layers" in message
    assert "mobilenetv2_100" in message and "Download the file again" in message
    assert cached_weights_path("mobilenetv2_100") is None
    assert loads_in_backbone == [], "refused from its statistics, before any model is built"


def test_only_the_statistics_decide_and_a_trained_file_passes(tmp_path):
    trained = write_legacy_weights(tmp_path / "trained.h5", trained=True)
    untrained = write_legacy_weights(tmp_path / "untrained.h5", trained=False)

    assert weights_check.untouched_batch_norm_layers(trained) == (0, 4)
    assert weights_check.untouched_batch_norm_layers(untrained) == (4, 4)
    weights_check.check_trained(trained, "mobilenetv2_100")


def test_the_genuine_mobilenet_v2_file_passes_the_check():
    if not SHARED_MOBILENET_V2.is_file():
        pytest.skip(f"the shared ImageNet weights file {SHARED_MOBILENET_V2} is absent on this machine")

    assert weights_check.untouched_batch_norm_layers(SHARED_MOBILENET_V2) == (0, 52)
    weights_check.check_trained(SHARED_MOBILENET_V2, "mobilenetv2_100")


def test_an_untrained_file_already_shared_is_refused_when_a_run_builds_the_backbone():
    keras_cache_dir().mkdir(parents=True)
    write_legacy_weights(keras_cache_dir() / MOBILENET_V2, trained=False)  # planted before imports were checked

    with pytest.raises(WeightsUnavailableError, match="untrained weights.*shared by everyone"):
        backbones.build_backbone("mobilenetv2_100", 96, weights="imagenet")


# ----------------------------------------------------------------- whose weights


def test_a_students_import_stays_in_their_space_and_another_students_runs_do_not_see_it(
        tmp_path, classroom, loads_in_backbone, monkeypatch):
    source = write_legacy_weights(tmp_path / MOBILENET_V2, trained=True)

    with paths.as_user("ann"):
        imported = weights_import.import_weights(source)
        assert cached_weights_path("mobilenetv2_100") == imported.path
    assert imported.path == paths.user_home("ann") / "weights" / MOBILENET_V2
    assert not imported.for_everyone and "your own runs only" in imported.note
    assert not (keras_cache_dir() / MOBILENET_V2).exists()

    with paths.as_user("bo"):
        assert cached_weights_path("mobilenetv2_100") is None
        assert not backbones.weights_available_offline("mobilenetv2_100")
    monkeypatch.setenv(paths.USER_ENV_VAR, "bo")  # how bo's training process learns whose run it trains
    assert cached_weights_path("mobilenetv2_100") is None


def test_a_student_may_not_install_for_everyone(tmp_path, classroom, loads_in_backbone, monkeypatch):
    source = write_legacy_weights(tmp_path / MOBILENET_V2, trained=True)
    monkeypatch.setattr(weights_import, "published_hash", lambda file_name: sha256(source))

    with paths.as_user("ann"), pytest.raises(NotAllowedError, match="only a teacher"):
        weights_import.import_weights(source, for_everyone=True)
    assert not (keras_cache_dir() / MOBILENET_V2).exists()


def test_a_teachers_verified_file_is_installed_for_everyone(tmp_path, classroom, loads_in_backbone, monkeypatch):
    source = write_legacy_weights(tmp_path / MOBILENET_V2, trained=True)
    monkeypatch.setattr(weights_import, "published_hash", lambda file_name: sha256(source))  # as Keras would publish it

    with paths.as_user("mr-lee"):
        assert weights_import.may_install_weights_for_everyone()
        imported = weights_import.import_weights(source, for_everyone=True)

    assert imported == weights_import.ImportedWeights(keras_cache_dir() / MOBILENET_V2, verified=True, for_everyone=True)
    assert "installed for everyone" in imported.note
    for student in ("ann", "bo"):
        with paths.as_user(student):
            assert cached_weights_path("mobilenetv2_100") == keras_cache_dir() / MOBILENET_V2


def test_an_unverified_file_is_never_installed_for_everyone(tmp_path, classroom, loads_in_backbone):
    source = write_legacy_weights(tmp_path / MOBILENET_V2, trained=True)  # Keras publishes no hash for MobileNetV2

    with paths.as_user("mr-lee"):
        imported = weights_import.import_weights(source, for_everyone=True)
    with paths.as_user(None):  # the operator, at the machine's command line
        by_operator = weights_import.import_weights(source, for_everyone=True)

    assert imported.path == paths.user_home("mr-lee") / "weights" / MOBILENET_V2
    assert by_operator.path == own_weights_dir() / MOBILENET_V2 == paths.machine_home() / "weights" / MOBILENET_V2
    assert not imported.for_everyone and "never installed for everyone" in imported.note
    assert not (keras_cache_dir() / MOBILENET_V2).exists()
    with paths.as_user("ann"):
        assert cached_weights_path("mobilenetv2_100") is None


# ----------------------------------------------------------------- uploads of weights


def test_a_refused_weights_upload_is_removed_and_the_right_file_then_imports(tmp_path, classroom, loads_in_backbone):
    untrained = write_legacy_weights(tmp_path / "untrained.h5", trained=False).read_bytes()
    trained = write_legacy_weights(tmp_path / "trained.h5", trained=True).read_bytes()

    with paths.as_user("ann"):
        with pytest.raises(InputError, match="untrained weights"):
            weights_import.import_uploaded_weights(MOBILENET_V2, untrained)
        assert not any(path.is_file() for path in paths.uploads_dir().rglob("*")), "nothing of the refused file is kept"

        imported = weights_import.import_uploaded_weights(MOBILENET_V2, trained)

        assert imported.path.name == MOBILENET_V2, "the same name again, not '...-2.h5'"
        assert imported.path.read_bytes() == trained
        assert cached_weights_path("mobilenetv2_100") == imported.path
        assert not any(path.is_file() for path in paths.uploads_dir().rglob("*")), "the copy in uploads is not kept"
