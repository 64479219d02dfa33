"""Tests for saving browser uploads (tlcore.uploads): safe names, class folders, caps."""

import io
import pathlib

import pytest

from tlcore.data.uploads import safe_parts, save_uploaded_file, save_uploaded_files
from tlcore.errors import InputError


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))


def _files_under(root: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("photos/cats/a.jpg", ("photos", "cats", "a.jpg")),
        ("../../etc/cats/a.jpg", ("etc", "cats", "a.jpg")),
        ("/etc/passwd", ("etc", "passwd")),
        ("C:\\Users\\me\\cats\\a.jpg", ("Users", "me", "cats", "a.jpg")),
        ("photos/./cats//a.jpg", ("photos", "cats", "a.jpg")),
        ("cats/..\\..\\a.jpg", ("cats", "a.jpg")),
        ("cats/bad\x00name.jpg", ("cats", "badname.jpg")),
        ("..", ()),
    ],
)
def test_safe_parts_strips_dangerous_parts(name, expected):
    assert safe_parts(name) == expected


def test_folder_upload_keeps_class_folders_below_the_picked_folder(tmp_path):
    saved = save_uploaded_files(
        [("photos/cats/a.jpg", b"a"), ("photos/dogs/b.jpg", b"b"), ("photos/dogs/puppies/c.jpg", b"c")]
    )

    assert saved.root.parent.parent == tmp_path / "home" / "uploads"
    assert saved.root.name == "photos", "the dataset keeps the name of the folder the user picked"
    assert _files_under(saved.root) == ["cats/a.jpg", "dogs/b.jpg", "dogs/puppies/c.jpg"]
    assert saved.saved == 3 and saved.skipped == ()
    assert (saved.root / "cats" / "a.jpg").read_bytes() == b"a"


def test_hostile_names_stay_inside_the_upload_folder(tmp_path):
    saved = save_uploaded_files(
        [("../../../cats/a.jpg", b"a"), ("/abs/dogs/b.jpg", b"b"), ("D:\\x\\dogs\\c.jpg", b"c")]
    )

    for path in saved.root.rglob("*"):
        assert path.resolve().is_relative_to(saved.root.resolve())
    assert not (tmp_path / "cats").exists()
    assert saved.saved == 3


def test_hidden_and_system_files_are_dropped_silently():
    saved = save_uploaded_files(
        [
            ("photos/cats/a.jpg", b"a"),
            ("photos/cats/.DS_Store", b"x"),
            ("photos/__MACOSX/cats/._a.jpg", b"x"),
            ("photos/.git/config", b"x"),
            ("photos/dogs/Thumbs.db", b"x"),
            ("photos/dogs/b.jpg", b"b"),
        ]
    )

    assert _files_under(saved.root) == ["cats/a.jpg", "dogs/b.jpg"]
    assert saved.skipped == ()


def test_loose_files_have_no_class_and_are_reported():
    saved = save_uploaded_files([("photos/readme.txt", b"r"), ("photos/cats/a.jpg", b"a")])

    assert _files_under(saved.root) == ["cats/a.jpg"]
    assert saved.skipped == (("photos/readme.txt", "not inside a class folder, so it has no class"),)


def test_a_picked_class_folder_becomes_one_class():
    saved = save_uploaded_files([("cats/a.jpg", b"a"), ("cats/b.jpg", b"b")])

    assert _files_under(saved.root) == ["cats/a.jpg", "cats/b.jpg"]


def test_names_that_collide_after_cleaning_get_a_number():
    saved = save_uploaded_files([("p/cats/a.jpg", b"1"), ("p\\cats\\a.jpg", b"2"), ("p/cats/A.jpg", b"3")])

    assert _files_under(saved.root) == ["cats/A-3.jpg", "cats/a-2.jpg", "cats/a.jpg"]
    assert (saved.root / "cats" / "a-2.jpg").read_bytes() == b"2"


def test_file_objects_are_accepted():
    saved = save_uploaded_files([("p/cats/a.jpg", io.BytesIO(b"abc")), ("p/dogs/b.jpg", io.BytesIO(b"de"))])

    assert (saved.root / "cats" / "a.jpg").read_bytes() == b"abc"


def test_too_many_files_is_refused_before_writing(tmp_path):
    with pytest.raises(InputError, match="more than the limit of 2"):
        save_uploaded_files([("p/c/1.jpg", b"1"), ("p/c/2.jpg", b"2"), ("p/d/3.jpg", b"3")], max_files=2)
    assert not (tmp_path / "home" / "uploads").exists() or not any((tmp_path / "home" / "uploads").iterdir())


def test_too_many_bytes_is_refused():
    with pytest.raises(InputError, match="more than the limit"):
        save_uploaded_files([("p/c/1.jpg", b"x" * 600), ("p/d/2.jpg", b"x" * 600)], max_total_bytes=1000)


def test_an_oversized_file_is_skipped_with_its_reason():
    saved = save_uploaded_files([("p/c/big.jpg", b"x" * 2000), ("p/c/ok.jpg", b"x"), ("p/d/ok.jpg", b"x")], max_file_bytes=1000)

    assert saved.saved == 2
    assert saved.skipped[0][0] == "p/c/big.jpg" and "larger than" in saved.skipped[0][1]


def test_nothing_usable_raises_and_leaves_no_folder(tmp_path):
    with pytest.raises(InputError, match="one folder per"):
        save_uploaded_files([("a.jpg", b"a"), ("b.jpg", b"b")])
    uploads = tmp_path / "home" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_empty_upload_raises():
    with pytest.raises(InputError):
        save_uploaded_files([])


def test_single_file_keeps_only_its_safe_name():
    path = save_uploaded_file("../../somewhere/My Photos.zip", b"PK")

    assert path.name == "My Photos.zip"
    assert path.parent.parent.name == "uploads"
    assert path.read_bytes() == b"PK"


def test_single_file_size_cap_and_bad_names():
    with pytest.raises(InputError, match="limit"):
        save_uploaded_file("a.zip", b"x" * 20, max_bytes=10)
    with pytest.raises(InputError):
        save_uploaded_file("../..", b"x")
    with pytest.raises(InputError):
        save_uploaded_file(".hidden.zip", b"x")


def test_an_unusable_upload_is_removed_with_the_reason(tmp_path):
    import zipfile

    from tlcore import paths
    from tlcore.data.uploads import keep_if_usable, save_uploaded_file

    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as handle:
        handle.writestr("readme.txt", "no pictures here")
    saved = save_uploaded_file("empty.zip", empty.read_bytes())

    with pytest.raises(InputError, match="no class folders"):
        keep_if_usable(saved)
    assert not saved.exists() and not any(paths.uploads_dir().iterdir())


def test_a_second_upload_of_the_same_name_is_made_unique(tmp_path):
    first = save_uploaded_files([("photos/cats/a.jpg", b"a"), ("photos/dogs/b.jpg", b"b")])
    second = save_uploaded_files([("photos/cats/a.jpg", b"a"), ("photos/dogs/b.jpg", b"b")])
    zipped = save_uploaded_file("photos.zip", b"PK")

    assert (first.root.name, second.root.name, zipped.name) == ("photos", "photos-2", "photos-3.zip")
