"""Tests for tlcore.archive: every zip is built in tmp_path inside the test."""

import hashlib
import os
import pathlib
import stat
import zipfile

import pytest

from tlcore.data import archive
from tlcore.data.archive import ExtractedArchive, extract_zip
from tlcore.errors import InputError


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """Write a zip from {entry name or ZipInfo: bytes}; ZipInfo keys keep odd names as written."""
    with zipfile.ZipFile(path, "w", compression=compression) as output:
        for name, content in entries.items():
            output.writestr(name, content)
    return path


def symlink_info(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def extraction_dir_for(zip_path, cache_root):
    return cache_root / hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]


def relative_files(root):
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_zip_with_class_folders_extracts_into_content_named_dir(tmp_path):
    zip_path = make_zip(
        tmp_path / "pets.zip", {"cats/a.jpg": b"cat", "dogs/b.jpg": b"dog", "cats/c.jpg": b"cat2"}
    )
    cache_root = tmp_path / "cache"

    result = extract_zip(zip_path, cache_root)

    assert result.root == extraction_dir_for(zip_path, cache_root)
    assert len(result.root.name) == 16
    assert (result.root / ".complete").is_file()
    assert relative_files(result.root) == [".complete", "cats/a.jpg", "cats/c.jpg", "dogs/b.jpg"]
    assert (result.root / "dogs" / "b.jpg").read_bytes() == b"dog"
    assert result.skipped_entries == ()
    assert [path.name for path in cache_root.iterdir()] == [result.root.name]  # no temporary dir left


def test_single_top_level_folder_becomes_the_root(tmp_path):
    zip_path = make_zip(
        tmp_path / "pets.zip",
        {"pets/": b"", "pets/cats/a.jpg": b"1", "pets/dogs/b.jpg": b"2", "__MACOSX/pets/._a.jpg": b"junk"},
    )
    cache_root = tmp_path / "cache"

    result = extract_zip(zip_path, cache_root)

    assert result.root == extraction_dir_for(zip_path, cache_root) / "pets"
    assert relative_files(result.root) == ["cats/a.jpg", "dogs/b.jpg"]
    assert not (result.root.parent / "__MACOSX").exists()
    assert result.skipped_entries == ()


def test_hidden_and_system_entries_are_ignored_silently(tmp_path):
    zip_path = make_zip(
        tmp_path / "pets.zip",
        {
            "cats/a.jpg": b"1",
            "cats/.DS_Store": b"x",
            "cats/Thumbs.db": b"x",
            "dogs/._b.jpg": b"x",
            "dogs/b.jpg": b"2",
            "__MACOSX/cats/._a.jpg": b"x",
            ".ipynb_checkpoints/x.jpg": b"x",
        },
    )

    result = extract_zip(zip_path, tmp_path / "cache")

    assert relative_files(result.root) == [".complete", "cats/a.jpg", "dogs/b.jpg"]
    assert result.skipped_entries == ()


def test_escaping_and_absolute_entries_are_skipped_and_nothing_lands_outside(tmp_path):
    absolute_name = (tmp_path / "evil_absolute.txt").as_posix()
    entries = {
        "cats/a.jpg": b"ok",
        "dogs/b.jpg": b"ok",
        zipfile.ZipInfo("../evil.txt"): b"evil",
        zipfile.ZipInfo("cats/../../evil.txt"): b"evil",
        zipfile.ZipInfo(absolute_name): b"evil",
        zipfile.ZipInfo("..\\..\\evil.txt"): b"evil",
        zipfile.ZipInfo("C:\\evil.txt"): b"evil",
    }
    zip_path = make_zip(tmp_path / "sneaky.zip", entries)
    cache_root = tmp_path / "deep" / "er" / "cache"

    result = extract_zip(zip_path, cache_root)

    assert relative_files(result.root) == [".complete", "cats/a.jpg", "dogs/b.jpg"]
    assert dict(result.skipped_entries) == {
        "../evil.txt": "path escapes the archive (contains ..)",
        "cats/../../evil.txt": "path escapes the archive (contains ..)",
        absolute_name: "absolute path",
        "..\\..\\evil.txt": "path escapes the archive (contains ..)",
        "C:\\evil.txt": "absolute path (Windows drive letter)",
    }
    assert [path for path in tmp_path.rglob("*evil*")] == []


def test_symbolic_link_entry_is_skipped(tmp_path):
    zip_path = make_zip(
        tmp_path / "links.zip", {"cats/a.jpg": b"1", symlink_info("cats/passwd"): b"/etc/passwd"}
    )

    result = extract_zip(zip_path, tmp_path / "cache")

    assert result.skipped_entries == (("cats/passwd", "symbolic link"),)
    assert not (result.root / "cats" / "passwd").exists()
    assert not any(path.is_symlink() for path in result.root.rglob("*"))


def test_zip_bomb_is_refused_and_leaves_nothing(tmp_path):
    zip_path = make_zip(tmp_path / "bomb.zip", {"zeros/a.png": bytes(4 * 1024 * 1024)})
    cache_root = tmp_path / "cache"

    with pytest.raises(InputError) as raised:
        extract_zip(zip_path, cache_root, max_total_bytes=1024 * 1024)

    message = str(raised.value)
    assert "bomb.zip" in message and "more than 1.0 MB" in message and "zip bomb" in message
    assert list(cache_root.iterdir()) == []


def test_size_cap_is_enforced_while_copying_even_when_declared_sizes_lie(tmp_path, monkeypatch):
    zip_path = make_zip(
        tmp_path / "bomb.zip", {f"zeros/{index}.png": bytes(512 * 1024) for index in range(6)}
    )
    cache_root = tmp_path / "cache"
    # Pretend the zip declared tiny sizes, so only the count taken while copying can stop it.
    monkeypatch.setattr(archive, "_declared_total_bytes", lambda entries: 0)

    with pytest.raises(InputError, match="zip bomb"):
        extract_zip(zip_path, cache_root, max_total_bytes=1024 * 1024)

    assert list(cache_root.iterdir()) == []


def test_too_many_entries_is_refused(tmp_path):
    zip_path = make_zip(tmp_path / "many.zip", {f"cats/{index}.jpg": b"x" for index in range(5)})
    cache_root = tmp_path / "cache"

    with pytest.raises(InputError, match="holds 5 entries"):
        extract_zip(zip_path, cache_root, max_entries=3)

    assert not cache_root.exists() or list(cache_root.iterdir()) == []


def test_file_that_is_not_a_zip_is_refused(tmp_path):
    not_zip = tmp_path / "photos.zip"
    not_zip.write_text("this is not a zip")

    with pytest.raises(InputError, match="not a valid zip"):
        extract_zip(not_zip, tmp_path / "cache")


def test_missing_zip_and_folder_are_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        extract_zip(tmp_path / "missing.zip", tmp_path / "cache")
    with pytest.raises(InputError, match="is a folder"):
        extract_zip(tmp_path, tmp_path / "cache")


def test_damaged_entry_is_refused_and_leaves_nothing(tmp_path):
    zip_path = make_zip(tmp_path / "damaged.zip", {"cats/a.jpg": b"A" * 1000}, compression=zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    data[data.index(b"A" * 1000) + 500] = ord("B")  # breaks the CRC of the stored data
    zip_path.write_bytes(bytes(data))
    cache_root = tmp_path / "cache"

    with pytest.raises(InputError, match="damaged"):
        extract_zip(zip_path, cache_root)

    assert list(cache_root.iterdir()) == []


def test_encrypted_entry_is_refused(tmp_path):
    zip_path = make_zip(tmp_path / "secret.zip", {"cats/a.jpg": b"x"}, compression=zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    # Python cannot write encrypted zips; set the "encrypted" flag in the local and central headers.
    data[data.index(b"PK\x03\x04") + 6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    zip_path.write_bytes(bytes(data))

    with pytest.raises(InputError, match="password-protected"):
        extract_zip(zip_path, tmp_path / "cache")


def test_finished_extraction_is_reused(tmp_path, monkeypatch):
    zip_path = make_zip(tmp_path / "pets.zip", {"cats/a.jpg": b"1", zipfile.ZipInfo("../x.txt"): b"2"})
    cache_root = tmp_path / "cache"
    first = extract_zip(zip_path, cache_root)

    def must_not_extract_again(*arguments, **keywords):
        raise AssertionError("the finished extraction should have been reused")

    monkeypatch.setattr(archive, "_write_entries", must_not_extract_again)
    second = extract_zip(zip_path, cache_root)

    assert second == first
    assert second.skipped_entries == (("../x.txt", "path escapes the archive (contains ..)"),)


def test_unfinished_extraction_without_marker_is_redone(tmp_path):
    zip_path = make_zip(tmp_path / "pets.zip", {"cats/a.jpg": b"1", "dogs/b.jpg": b"2"})
    cache_root = tmp_path / "cache"
    leftover = extraction_dir_for(zip_path, cache_root)
    (leftover / "cats").mkdir(parents=True)
    (leftover / "cats" / "half.jpg").write_bytes(b"partial")

    result = extract_zip(zip_path, cache_root)

    assert result.root == leftover
    assert relative_files(result.root) == [".complete", "cats/a.jpg", "dogs/b.jpg"]


def test_unicode_and_emoji_names_are_kept(tmp_path):
    zip_path = make_zip(tmp_path / "fotos.zip", {"chats/猫 😺.jpg": b"1", "café/élan.jpg": b"2"})

    result = extract_zip(zip_path, tmp_path / "cache")

    assert relative_files(result.root) == [".complete", "café/élan.jpg", "chats/猫 😺.jpg"]


def test_zip_holding_only_files_keeps_extraction_dir_as_root(tmp_path):
    zip_path = make_zip(tmp_path / "flat.zip", {"a.jpg": b"1"})
    cache_root = tmp_path / "cache"

    result = extract_zip(zip_path, cache_root)

    assert result.root == extraction_dir_for(zip_path, cache_root)


def test_extracted_archive_is_frozen(tmp_path):
    result = ExtractedArchive(root=tmp_path, skipped_entries=())

    with pytest.raises(AttributeError):
        result.root = tmp_path / "other"


def test_a_refused_zip_is_not_unpacked_again(tmp_path, monkeypatch):
    bomb = tmp_path / "big.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("cats/a.png", b"\0" * 200_000)
    with pytest.raises(InputError) as first:
        archive.extract_zip(bomb, tmp_path / "cache", max_total_bytes=1000)

    def must_not_unpack(*args, **kwargs):
        raise AssertionError("a zip refused before was unpacked again")

    monkeypatch.setattr(archive, "_extract_to_temporary", must_not_unpack)
    with pytest.raises(InputError) as again:
        archive.extract_zip(bomb, tmp_path / "cache", max_total_bytes=1000)
    assert str(again.value) == str(first.value)


def test_the_zip_cache_keeps_the_most_recently_used_within_its_cap(tmp_path):
    cache = tmp_path / "cache"
    zips = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as handle:
            handle.writestr(f"{name}/cats/x.jpg", os.urandom(10_000))
            handle.writestr(f"{name}/dogs/y.jpg", os.urandom(10_000))
        zips.append(path)
    first, second, third = (archive.extract_zip(path, cache) for path in zips)
    os.utime(pathlib.Path(first.root).parent / ".complete", (1, 1))  # the least recently used

    deleted = archive.evict_least_recently_used(cache, max_bytes=45_000)

    assert len(deleted) == 1 and not pathlib.Path(first.root).exists()
    assert pathlib.Path(second.root).exists() and pathlib.Path(third.root).exists()


def test_a_refusal_remembered_under_the_old_rules_is_forgotten(tmp_path):
    # Refused before for its .bin filler, when everything was unpacked; only pictures are unpacked now.
    filled = make_zip(tmp_path / "filled.zip", {"cats/a.jpg": b"1", "dogs/b.jpg": b"2", "cats/filler.bin": bytes(5000)})
    cache_root = tmp_path / "cache"
    refusal = archive._refusal_file(extraction_dir_for(filled, cache_root))
    refusal.parent.mkdir(parents=True)
    refusal.write_text('{"message": "the zip \'filled.zip\' expands to more than 1.0 KB"}', encoding="utf-8")

    result = extract_zip(filled, cache_root, max_total_bytes=1000)

    assert relative_files(result.root) == [".complete", "cats/a.jpg", "dogs/b.jpg"]
    assert result.skipped_entries == (("cats/filler.bin", archive.NOT_A_PICTURE),)
