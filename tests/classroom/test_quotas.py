"""The limit per person counts what a person's actions write, and is kept before and while a zip is unpacked.

The attack these reproduce: with `TLCORE_MAX_UPLOAD_MB=20`, a 2.3 MB zip of 24
photos and 9 x 96 MiB of zeros in `.bin` files was accepted, and the student's
space grew to 878 MB while the limit showed 6.1 MB used; 99,000 one-byte
entries took 441 MB. Here the same shapes at a tiny limit: zeros compress to
almost nothing, so a small zip declares a lot.
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import pytest
from conftest import draw_tiny_image

import tlcore
from tlcore import paths
from tlcore.classroom import quotas
from tlcore.data import archive
from tlcore.data.uploads import keep_if_usable, save_uploaded_file
from tlcore.errors import InputError, QuotaExceededError

MEBIBYTE = 1024**2


def picture_bytes(label: str, index: int) -> bytes:
    buffer = io.BytesIO()
    draw_tiny_image(label, index).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for name, data in entries.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def photos(per_class: int = 6) -> dict[str, bytes]:
    return {f"pets/{label}/{label}_{index}.png": picture_bytes(label, index)
            for label in ("circles", "squares") for index in range(per_class)}


def disk_use(root: pathlib.Path) -> int:
    """What a folder takes on disk, each file in whole blocks, as `du` would say."""
    return sum(quotas.disk_bytes(path.stat().st_size) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def limit_of_one_megabyte(monkeypatch):
    monkeypatch.setenv(quotas.UPLOAD_ENV_VAR, "1")
    return MEBIBYTE


def test_filler_that_is_not_pictures_is_never_unpacked_and_the_space_stays_within_the_limit(limit_of_one_megabyte):
    filler = {f"pets/circles/filler_{index}.bin": bytes(8 * MEBIBYTE) for index in range(3)}  # 24 MiB declared
    data = zip_bytes({**photos(), **filler})
    assert len(data) < 200_000, "zeros compress to almost nothing"

    with paths.as_user("ann"):
        dataset = keep_if_usable(save_uploaded_file("pets.zip", data))
        audit = tlcore.audit_dataset(dataset, find_duplicates=False)
        used = quotas.used_bytes()
        space = disk_use(paths.tlcore_home())

    assert not list(dataset.rglob("*.bin")), "the .bin filler was not unpacked"
    assert sorted(audit.class_names) == ["circles", "squares"]
    assert used <= limit_of_one_megabyte and space <= limit_of_one_megabyte
    assert used >= disk_use(dataset), "what was unpacked is counted"


def test_declared_sizes_over_the_space_left_are_refused_before_anything_is_written(limit_of_one_megabyte, monkeypatch,
                                                                                    tmp_path):
    big_pictures = tmp_path / "big.zip"
    big_pictures.write_bytes(zip_bytes({f"pets/cats/{index}.png": bytes(MEBIBYTE // 2) for index in range(3)}))
    monkeypatch.setattr(archive, "_copy_entry", lambda *args: pytest.fail("an entry was written"))

    with paths.as_user("ann"), pytest.raises(QuotaExceededError) as caught:
        archive.extract_zip(big_pictures, paths.zip_cache_dir())

    message = str(caught.value)
    assert "unpacking the pictures of the zip 'big.zip' (1.5 MB)" in message
    assert "more than the 1.0 MB each person may keep" in message and quotas.UPLOAD_ENV_VAR in message
    with paths.as_user("ann"):
        assert disk_use(paths.tlcore_home()) == 0

    monkeypatch.undo()  # a refusal for want of space is not remembered: once there is room, the same zip unpacks
    monkeypatch.setenv(quotas.UPLOAD_ENV_VAR, "4")
    with paths.as_user("ann"):
        extracted = archive.extract_zip(big_pictures, paths.zip_cache_dir())
    assert len(list(extracted.root.rglob("*.png"))) == 3


def test_a_zip_holding_more_than_it_declares_is_stopped_while_unpacking(limit_of_one_megabyte, monkeypatch, tmp_path):
    lying = tmp_path / "lying.zip"
    lying.write_bytes(zip_bytes({f"pets/cats/{index}.png": bytes(MEBIBYTE // 2) for index in range(4)}))
    monkeypatch.setattr(archive, "_declared_disk_bytes", lambda entries: 0)  # as if it declared nothing

    with paths.as_user("ann"):
        with pytest.raises(QuotaExceededError, match="was stopped: its pictures hold more than it declares"):
            archive.extract_zip(lying, paths.zip_cache_dir())
        assert disk_use(paths.tlcore_home()) == 0, "nothing of it is kept"


def test_tiny_entries_count_a_disk_block_each(limit_of_one_megabyte, tmp_path):
    many = tmp_path / "many.zip"
    many.write_bytes(zip_bytes({f"pets/cats/{index}.jpg": b"x" for index in range(300)}))  # 300 bytes, 1.2 MB on disk

    with paths.as_user("ann"), pytest.raises(QuotaExceededError, match=r"'many.zip' \(1.2 MB\)"):
        archive.extract_zip(many, paths.zip_cache_dir())


def test_only_pictures_are_unpacked_even_one_saved_without_its_extension(tmp_path):
    mixed = tmp_path / "mixed.zip"
    mixed.write_bytes(zip_bytes({"cats/a.png": picture_bytes("circles", 0), "cats/photo": picture_bytes("circles", 1),
                                 "cats/zeros.bin": bytes(100_000), "cats/notes.txt": b"my cats"}))

    extracted = archive.extract_zip(mixed, tmp_path / "cache")

    assert sorted(path.name for path in extracted.root.rglob("*") if path.is_file()) == ["a.png", "photo"]
    assert dict(extracted.skipped_entries) == {"cats/zeros.bin": archive.NOT_A_PICTURE,
                                               "cats/notes.txt": archive.NOT_A_PICTURE}


def test_uploads_unpacked_zips_kept_features_exports_and_own_weights_are_counted_and_runs_are_not():
    with paths.as_user("ann"):
        for folder in (paths.uploads_dir() / "1", paths.zip_cache_dir() / "a", paths.cache_dir() / "features" / "k",
                       paths.default_runs_dir() / "run-1" / "export", paths.own_weights_dir()):
            folder.mkdir(parents=True)
            (folder / "file").write_bytes(bytes(5000))  # two blocks
        (paths.default_runs_dir() / "run-1" / "model.keras").write_bytes(bytes(50_000))  # runs are limited by number

        assert quotas.used_bytes() == 5 * 2 * 4096
        assert tlcore.quota_usage()["upload_bytes"] == 5 * 2 * 4096
    with paths.as_user("bo"):
        assert quotas.used_bytes() == 0


def test_an_upload_is_refused_once_features_and_exports_fill_the_space(monkeypatch):
    monkeypatch.setenv(quotas.UPLOAD_ENV_VAR, "0.05")  # 52 KB
    with paths.as_user("ann"):
        features = paths.cache_dir() / "features" / "k"
        features.mkdir(parents=True)
        (features / "features-1.npy").write_bytes(bytes(40_000))

        with pytest.raises(QuotaExceededError, match="uploads, unpacked zips, kept features, exports"):
            save_uploaded_file("more.zip", bytes(20_000))
        assert not any(path.is_file() for path in paths.uploads_dir().rglob("*"))


def test_a_refused_zip_upload_is_removed_and_the_right_zip_then_keeps_its_name(limit_of_one_megabyte):
    with paths.as_user("ann"):
        wrong = save_uploaded_file("pets.zip", zip_bytes({"pets/readme.txt": b"no pictures here"}))
        with pytest.raises(InputError):
            keep_if_usable(wrong)
        assert not any(path.is_file() for path in paths.uploads_dir().rglob("*")), "nothing of it counts any more"

        right = keep_if_usable(save_uploaded_file("pets.zip", zip_bytes(photos())))

        assert right.name == "pets.zip", "the same name again, not 'pets-2.zip'"
        assert sorted(tlcore.audit_dataset(right, find_duplicates=False).class_names) == ["circles", "squares"]
        assert [path.name for path in paths.uploads_dir().rglob("*.zip")] == ["pets.zip"]


def test_an_export_into_the_users_space_is_refused_when_it_would_pass_the_limit(monkeypatch, tmp_path):
    from tlcore.export.writers import export_run
    from tlcore.runs import folder as run_folder

    monkeypatch.setenv(quotas.UPLOAD_ENV_VAR, "0.1")  # 100 KB
    with paths.as_user("ann"):
        run_dir = paths.default_runs_dir() / "20261207-120000-mobilenetv2_035-pets"
        run_dir.mkdir(parents=True)
        (run_dir / run_folder.CONFIG_FILE).write_text(tlcore.TrainConfig(data=str(tmp_path)).to_json())
        (run_dir / run_folder.MODEL_FILE).write_bytes(bytes(200_000))

        with pytest.raises(QuotaExceededError, match=r"exporting the model as ONNX \(.onnx\) \(196.0 KB\)"):
            export_run(run_dir, "onnx")
        assert not (run_dir / "export").exists()
