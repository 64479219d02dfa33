"""The stratified, seeded train/validation split, keeping every copy of a picture on one side.

Copies (byte-identical files and near copies: resized, re-saved, slightly
edited) of one picture within a class form one unit that goes wholly to
training or wholly to validation: a copy in validation of a training picture
would inflate the accuracy. Units are ordered by a seeded hash of their own
names, not by a shuffle of the whole class, so leaving a file out, or moving
one to another class, changes where at most one other unit goes: two runs on
the edited and the unedited dataset are checked on nearly the same pictures,
and their results can be compared picture by picture.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from tlcore.data import duplicates as duplicate_search
from tlcore.data.records import DuplicateGroup, ImageRecord


def split_records(
    records: list[ImageRecord], val_split: float, seed: int, groups: list[DuplicateGroup] | None = None
) -> list[ImageRecord]:
    """Stratified, seeded train/validation split of one pool of images.

    Each class keeps at least one training image; a class with two or more
    images gives at least one to validation, so every class is validated.
    Exact and near copies within a class stay on the same side of the split.

    Args:
        records: the usable images, all of one pool (their `split` is ignored).
        val_split: the fraction of each class for validation.
        seed: makes the split repeatable; another seed draws another split.
        groups: the duplicate groups of these records (`duplicates.find_duplicates`),
            when the caller has them already; otherwise the copies are found
            here from the kept picture hashes (`duplicates.copy_units`).

    Returns:
        The records with their `split` set to "train" or "val".
    """
    unit_of = duplicate_search.copy_units(records) if groups is None else _unit_keys(groups)
    by_label: dict[str, list[ImageRecord]] = {}
    for record in sorted(records, key=lambda r: r.relative):
        by_label.setdefault(record.label, []).append(record)
    result = []
    for label, members in sorted(by_label.items()):
        units = _copy_units(members, unit_of)
        units.sort(key=lambda unit: _rank(seed, label, unit))
        validated = _validation_units(units, len(members), val_split)
        for index, unit in enumerate(units):
            split = "val" if index in validated else "train"
            # `replace`, not a copy through `asdict`: a record holds only scalars, and at 100,000 pictures
            # `asdict` took 3.5 of the split's 4.8 s.
            result.extend(replace(record, split=split) for record in unit)
    return result


def _validation_units(units: list[list[ImageRecord]], count: int, val_split: float) -> set[int]:
    """Which units (by index, in rank order) go to validation.

    Units are taken in order while they fit the class's share; a unit too big
    for it is passed over (one picture's many copies must not fill validation).
    A class of two or more images that got none then gives its first unit
    that leaves a training image, so every class is validated.
    """
    val_count = min(max(1, round(count * val_split)), count - 1) if count >= 2 else 0
    chosen, in_val = set(), 0
    for index, unit in enumerate(units):
        if in_val + len(unit) <= val_count and count - in_val - len(unit) >= 1:
            chosen.add(index)
            in_val += len(unit)
    if not chosen and val_count:
        chosen = {next((i for i, unit in enumerate(units) if count - len(unit) >= 1), 0)} if len(units) > 1 else set()
    return chosen


def _unit_keys(groups: list[DuplicateGroup]) -> dict[str, str]:
    """{file: the first file (by name) of its duplicate group}; files in no group are their own unit."""
    return {member.relative: min(group.files) for group in groups for member in group.members}


def _copy_units(members: list[ImageRecord], unit_of: dict[str, str]) -> list[list[ImageRecord]]:
    """Group a class's records so the copies of one picture form one unit, in name order."""
    units: dict[str, list[ImageRecord]] = {}
    for record in members:
        units.setdefault(unit_of.get(record.relative, record.relative), []).append(record)
    return list(units.values())


def _rank(seed: int, label: str, unit: list[ImageRecord]) -> bytes:
    """Where a unit comes in its class's order: a hash of the seed, the class and the unit's first name."""
    return hashlib.sha256(f"{seed}:{label}:{unit[0].relative}".encode("utf-8", "surrogatepass")).digest()
