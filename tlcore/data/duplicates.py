"""Find pictures that are in a dataset more than once: exact copies and near copies.

Real folders are full of them: a photo saved twice, the same download under two
names, a resized or re-saved copy, the same picture filed under two classes.
Where the copies sit decides what they cost:

- within one class and one split, a copy only makes the model see that picture
  more often than the others (redundant; it inflates that class);
- in two classes, the model is told the same picture is two different things
  (a label conflict), which it cannot learn;
- in training and in validation or test, the model is graded on a picture it
  has already seen (leakage), so the accuracy shown is better than it will be
  on new photos.

Exact copies are found by the SHA-256 of the file bytes, near copies by a
perceptual hash (`imagehash.phash`, 64 bits) of the picture as training sees it
(`images.load_rgb`: upright, RGB), compared by Hamming distance. Each file is
in at most one group; a group is "exact" when all its files have the same
bytes, else "near". Nothing here touches the user's files: `suggested_exclusions`
returns paths for the run's config (`TrainConfig.excluded_files`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import TYPE_CHECKING

import numpy as np

from tlcore.data import checking, file_facts, images
from tlcore.data.records import (
    _SPLIT_ORDER,
    ACROSS_CLASSES,
    ACROSS_SPLITS,
    EXACT,
    NEAR,
    WITHIN_CLASS,
    DuplicateGroup,
    DuplicateMember,
)
from tlcore.errors import InputError

if TYPE_CHECKING:  # imported for type hints only: tlcore.data imports this module
    from tlcore.data.records import ImageRecord



NEAR_DUPLICATE_MAX_DISTANCE = 8


INDEX_FROM_HASHES = 2_000  # from this many pictures on, the multi-index beats comparing all pairs
_DISTANCES_PER_BLOCK = 4_000_000  # pairwise distances computed at once (32 MB), whatever the dataset size


def find_duplicates(
    records: list[ImageRecord],
    max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE,
    workers: int | None = None,
) -> list[DuplicateGroup]:
    """Group the records that hold the same picture, exactly or nearly.

    Files are hashed in a thread pool (hashing and Pillow's decoders release
    the GIL); each distinct content is decoded once, JPEGs at reduced scale.
    A file that cannot be read any more (changed since the audit) is left out
    of the comparison rather than failing it.

    Args:
        records: the usable images (`DatasetAudit.records`), after exclusions.
        max_distance: largest Hamming distance between two perceptual hashes
            for the pictures to count as near copies; -1 finds exact copies
            only. Defaults to `NEAR_DUPLICATE_MAX_DISTANCE` (8 of 64 bits).
        workers: threads to hash with; defaults to twice the CPU count, at most 8.

    Returns:
        The groups, label conflicts first, then leakage, then redundant copies.

    Raises:
        InputError: `max_distance` is not a whole number from -1 to 64.
    """
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not -1 <= max_distance <= 64:
        raise InputError(
            f"max_distance must be a whole number of bits from -1 to 64, got {max_distance!r} "
            f"(e.g. {NEAR_DUPLICATE_MAX_DISTANCE}; -1 finds exact copies only)."
        )
    if len(records) < 2:
        return []
    by_content, picture_hashes = _hash_files(records, max_distance >= 0, workers)
    contents = list(by_content)
    groups = []
    for content_indices in _connect_near_contents(picture_hashes, max_distance):
        members = [
            DuplicateMember(records[i].relative, records[i].label, records[i].split, contents[c])
            for c in content_indices
            for i in by_content[contents[c]]
        ]
        if len(members) >= 2:
            groups.append(_make_group(members))
    return sorted(groups, key=_group_order)


def with_current_places(groups: list[DuplicateGroup], records: list[ImageRecord]) -> list[DuplicateGroup]:
    """The same groups with each file's class and split as `records` now have them (after the split).

    Finding copies does not depend on where files sit, only what they cost
    does; so the audit finds the groups once, splits with them, and then
    asks this for their scopes and explanations.
    """
    places = {record.relative: record for record in records}
    regrouped = []
    for group in groups:
        members = [
            DuplicateMember(member.relative, places[member.relative].label, places[member.relative].split, member.sha256)
            for member in group.members
            if member.relative in places
        ]
        if len(members) >= 2:
            regrouped.append(_make_group(members))
    return sorted(regrouped, key=_group_order)


def _hash_files(
    records: list[ImageRecord], with_pictures: bool, workers: int | None
) -> tuple[dict[str, list[int]], list[int | None]]:
    """Hash every file's bytes, then each distinct content's picture once; both kept for the next audit.

    Returns:
        {sha256: indices of the records with those bytes}, and the perceptual
        hash of each distinct content in the same order (None where unreadable
        or when `with_pictures` is False).
    """
    digests = file_digests([record.path for record in records])
    by_content: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        if digest is not None:
            by_content.setdefault(digest, []).append(index)
    if not with_pictures:
        return by_content, [None] * len(by_content)
    return by_content, picture_hashes([records[indices[0]].path for indices in by_content.values()])


def file_digests(paths_to_hash: list[str]) -> list[str | None]:
    """The SHA-256 of each file's bytes (None where unreadable), kept for unchanged files."""
    return file_facts.cached(file_facts.SHA256, paths_to_hash, lambda missing: checking.run_in_parallel(_digests, missing))


def _digests(chunk: list[str]) -> list[str | None]:
    return [_content_digest(path) for path in chunk]


def _picture_hashes(chunk: list[str]) -> list[str | None]:
    """Perceptual hashes as hex text (JSON and SQLite keep 64-bit numbers poorly)."""
    return [_picture_hash(path) for path in chunk]


def picture_hashes(paths_to_hash: list[str]) -> list[int | None]:
    """The perceptual hash of each file (None where unreadable); kept for unchanged files, most from the check."""
    values = file_facts.cached(file_facts.PICTURE_HASH, paths_to_hash,
                               lambda missing: checking.run_in_parallel(_picture_hashes, missing))
    return [int(value, 16) if value is not None else None for value in values]


def copy_units(records: list[ImageRecord], max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE) -> dict[str, str]:
    """{file: the first file (by name) of its copies} for every file that has an exact or near copy.

    The same partition as `find_duplicates` (copies chain the same way), for
    the split: it reads no file when the check has kept the pictures' hashes,
    and hashes the bytes only of files of the same size as another.
    """
    hashes = picture_hashes([record.path for record in records])
    components = _connect_near_contents(hashes, max_distance)
    by_size: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        with contextlib.suppress(OSError):
            by_size.setdefault(os.path.getsize(record.path), []).append(index)
    twins = [index for same_size in by_size.values() if len(same_size) > 1 for index in same_size]
    by_digest: dict[str, list[int]] = {}
    for index, digest in zip(twins, file_digests([records[i].path for i in twins]), strict=True):
        if digest is not None:
            by_digest.setdefault(digest, []).append(index)
    return _unit_names(records, components + list(by_digest.values()))


def _unit_names(records: list[ImageRecord], linked: list[list[int]]) -> dict[str, str]:
    """Join overlapping index groups; name each joined group of two or more by its first file."""
    parent = list(range(len(records)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for indices in linked:
        for index in indices[1:]:
            parent[root(index)] = root(indices[0])
    members: dict[int, list[int]] = {}
    for index in range(len(records)):
        members.setdefault(root(index), []).append(index)
    names = {}
    for indices in members.values():
        if len(indices) > 1:
            first = min(records[i].relative for i in indices)
            names.update({records[i].relative: first for i in indices})
    return names


def _content_digest(path: str) -> str | None:
    try:
        return images.file_sha256(path)
    except OSError:
        return None


def _picture_hash(path: str) -> str | None:
    """The perceptual hash of a picture as training sees it (hex), or None if unreadable."""
    try:
        return images.perceptual_hash(images.load_rgb(path, preview=True))
    except (InputError, OSError):
        return None


def _connect_near_contents(picture_hashes: list[int | None], max_distance: int) -> list[list[int]]:
    """Join contents whose hashes are within `max_distance` bits; return the connected groups.

    Near copies chain: if A is near B and B is near C, all three are one group,
    so each file is in exactly one group.
    """
    parent = list(range(len(picture_hashes)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    known = [i for i, value in enumerate(picture_hashes) if value is not None]
    if max_distance >= 0 and len(known) >= 2:
        hashes = np.array([picture_hashes[i] for i in known], dtype=np.uint64)
        find = near_pairs_all if len(hashes) < INDEX_FROM_HASHES else near_pairs_indexed
        for first, second in find(hashes, max_distance):
            parent[root(known[int(first)])] = root(known[int(second)])
    components: dict[int, list[int]] = {}
    for index in range(len(picture_hashes)):
        components.setdefault(root(index), []).append(index)
    return list(components.values())


def near_pairs_all(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """Every pair (i < j) of 64-bit hashes within `max_distance` bits, by comparing all pairs in blocks."""
    pairs = []
    rows = max(1, _DISTANCES_PER_BLOCK // len(hashes))
    for start in range(0, len(hashes), rows):
        distances = _bit_counts(hashes[start : start + rows, None] ^ hashes[None, :])
        for row, column in zip(*np.nonzero(distances <= max_distance), strict=True):
            if start + int(row) < int(column):
                pairs.append((start + int(row), int(column)))
    return pairs


def near_pairs_indexed(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """The same pairs as `near_pairs_all`, through a multi-index on chunks of the hash: far fewer comparisons.

    The 64 bits are cut into `max_distance // 2 + 1` chunks. Two hashes within
    `max_distance` bits differ in at most one bit in at least one chunk (the
    bits that differ cannot be spread two or more over every chunk), so only
    hashes whose chunk is equal or one bit off in some chunk are compared.
    """
    chunks = max_distance // 2 + 1
    width = -(-64 // chunks)
    found: set[tuple[int, int]] = set()
    for chunk in range(chunks):
        shift = chunk * width
        bits = min(width, 64 - shift)
        if bits <= 0:
            break
        values = (hashes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
        order = np.argsort(values, kind="stable")
        sorted_values = values[order]
        flips = [0] + ([1 << bit for bit in range(bits)] if max_distance else [])  # distance 0: equal chunks only
        for flip in flips:
            found.update(_pairs_through(hashes, values ^ np.uint64(flip), order, sorted_values, max_distance))
    return sorted(found)


def _pairs_through(hashes, targets, order, sorted_values, max_distance) -> set[tuple[int, int]]:
    """Pairs (i, j) where j's chunk equals i's target chunk, within `max_distance` bits overall."""
    starts = np.searchsorted(sorted_values, targets, side="left")
    ends = np.searchsorted(sorted_values, targets, side="right")
    counts = ends - starts
    if not counts.sum():
        return set()
    firsts = np.repeat(np.arange(len(hashes)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    seconds = order[np.repeat(starts, counts) + offsets]
    keep = (firsts < seconds) & (_bit_counts(hashes[firsts] ^ hashes[seconds]) <= max_distance)
    return set(zip(firsts[keep].tolist(), seconds[keep].tolist(), strict=True))


def _bit_counts(values: np.ndarray) -> np.ndarray:
    """How many bits are set in each uint64 (numpy 2 has it built in; numpy 1.26 does not)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    return np.unpackbits(values[..., None].view(np.uint8), axis=-1).sum(axis=-1)


def with_splits(groups: list[DuplicateGroup], split_of: dict[str, str]) -> list[DuplicateGroup]:
    """The same groups after a new split: each member's split from `split_of`, and each group's scope redone."""
    regrouped = [_make_group([dataclasses.replace(member, split=split_of.get(member.relative, member.split))
                              for member in group.members]) for group in groups]
    return sorted(regrouped, key=_group_order)


def _make_group(members: list[DuplicateMember]) -> DuplicateGroup:
    members = sorted(members, key=_member_order)
    kind = EXACT if len({member.sha256 for member in members}) == 1 else NEAR
    classes = {member.label for member in members}
    splits = {member.split for member in members}
    if len(classes) > 1:
        scope = ACROSS_CLASSES
    elif len(splits) > 1:
        scope = ACROSS_SPLITS
    else:
        scope = WITHIN_CLASS
    return DuplicateGroup(kind=kind, scope=scope, members=tuple(members), explanation=_explain(kind, scope, members))


def _member_order(member: DuplicateMember) -> tuple:
    return (_SPLIT_ORDER.get(member.split, len(_SPLIT_ORDER)), member.relative)


def _group_order(group: DuplicateGroup) -> tuple:
    scope_rank = {ACROSS_CLASSES: 0, ACROSS_SPLITS: 1, WITHIN_CLASS: 2}[group.scope]
    return (scope_rank, group.kind != EXACT, group.files)


def _explain(kind: str, scope: str, members: list[DuplicateMember]) -> str:
    """Say what the copies are, why they matter and what to do, for a non-programmer."""
    count = len(members)
    if kind == EXACT:
        what = f"These {count} files are the same picture, byte for byte"
    else:
        what = f"These {count} files look like the same picture (resized, re-saved or slightly edited copies)"
    classes = sorted({member.label for member in members})
    splits = sorted({member.split for member in members}, key=_SPLIT_ORDER.get)
    if scope == ACROSS_CLASSES:
        text = (
            f"{what}, filed under different classes ({', '.join(repr(name) for name in classes)}): "
            "a label conflict. The model is told one picture is two different things, which it cannot "
            "learn. Decide which class is right and exclude the copies in the other class(es)."
        )
        if len(splits) > 1:
            text += f" The copies are also in more than one split ({', '.join(splits)}), so they leak too."
        return text
    if scope == ACROSS_SPLITS:
        return (
            f"{what}, in class {classes[0]!r}, in {' and '.join(splits)}: leakage. The model is graded on a "
            "picture it has already trained on, so the accuracy shown is better than it will be on new "
            "photos. Keep one copy and exclude the others, so the picture is in one split only."
        )
    advice = "Keep one and exclude the others" if kind == EXACT else (
        "If they are copies, keep one and exclude the others; if they are different shots, keep them"
    )
    return (
        f"{what}, all in class {classes[0]!r}. Extra copies make the model see this picture more often "
        f"than the others, which quietly inflates the class. {advice}."
    )
