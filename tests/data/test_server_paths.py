"""Tests for reading dataset folders on the server (tlcore.server_paths)."""

import os

import pytest

from tlcore.data.server_paths import (
    DATA_ROOTS_ENV_VAR,
    configured_roots,
    list_shared_folders,
    resolve_server_path,
    server_paths_enabled,
)
from tlcore.errors import InputError


@pytest.fixture
def shared(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    (root / "flowers" / "roses").mkdir(parents=True)
    (root / ".hidden").mkdir()
    outside = tmp_path / "private"
    outside.mkdir()
    monkeypatch.setenv(DATA_ROOTS_ENV_VAR, str(root))
    return root, outside


def test_off_when_unset(monkeypatch):
    monkeypatch.delenv(DATA_ROOTS_ENV_VAR, raising=False)
    assert configured_roots() == []
    assert not server_paths_enabled()
    with pytest.raises(InputError, match="turned off"):
        resolve_server_path("/tmp")


def test_several_roots_split_by_pathsep(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv(DATA_ROOTS_ENV_VAR, f"{first}{os.pathsep}{os.pathsep}{second}{os.pathsep}{first}")
    assert configured_roots() == [first.resolve(), second.resolve()]


def test_path_inside_a_root_is_accepted(shared):
    root, _ = shared
    assert resolve_server_path(str(root / "flowers")) == (root / "flowers").resolve()
    assert resolve_server_path(str(root)) == root.resolve()


def test_relative_path_is_looked_up_under_the_roots(shared):
    root, _ = shared
    assert resolve_server_path("flowers") == (root / "flowers").resolve()


def test_path_outside_is_refused(shared):
    _, outside = shared
    with pytest.raises(InputError, match="outside the folders"):
        resolve_server_path(str(outside))


def test_dot_dot_escape_is_refused(shared):
    root, outside = shared
    with pytest.raises(InputError, match="outside"):
        resolve_server_path(str(root / "flowers" / ".." / ".." / outside.name))
    with pytest.raises(InputError, match="outside"):
        resolve_server_path("../private")


def test_symlink_pointing_outside_is_refused(shared):
    root, outside = shared
    (root / "sneaky").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="outside"):
        resolve_server_path(str(root / "sneaky"))


def test_prefix_sibling_is_not_inside(shared, tmp_path):
    root, _ = shared
    sibling = tmp_path / "shared-but-not"
    sibling.mkdir()
    with pytest.raises(InputError, match="outside"):
        resolve_server_path(str(sibling))


def test_missing_path_inside_a_root_says_so(shared):
    root, _ = shared
    with pytest.raises(InputError, match="does not exist"):
        resolve_server_path(str(root / "nope"))


def test_empty_path_is_refused(shared):
    with pytest.raises(InputError, match="no path"):
        resolve_server_path("  ")


def test_list_shared_folders_skips_hidden_and_links(shared):
    root, outside = shared
    (root / "link").symlink_to(outside, target_is_directory=True)
    names = [p.relative_to(root.resolve()).as_posix() for p in list_shared_folders()]
    assert names == [".", "flowers", "flowers/roses"]


@pytest.mark.parametrize("typed", ["x" * 5000, "photos\x00/cats", "loop"])
def test_hostile_typed_paths_get_a_clear_message(tmp_path, monkeypatch, typed):
    root = tmp_path / "shared"
    root.mkdir()
    (root / "loop").symlink_to(root / "loop")  # a link to itself: resolving it loops
    monkeypatch.setenv(DATA_ROOTS_ENV_VAR, str(root))
    with pytest.raises(InputError) as caught:
        resolve_server_path(typed)
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 400
