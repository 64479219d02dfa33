"""The stratified, seeded train/validation split, keeping byte-identical copies on one side.
"""

from __future__ import annotations

import os
import random

from tlcore.data.duplicates import file_digests
from tlcore.data.records import ImageRecord


def split_records(records: list[ImageRecord], val_split: float, seed: int,
                  copy_keys: dict[str, str] | None = None) -> list[ImageRecord]:
    """Stratified, seeded train/validation split of one pool of images.

    Each class keeps at least one training image; a class with two or more
    images gives at least one to validation, so every class is validated.
    Byte-identical copies within a class stay on the same side of the split:
    a copy in validation of a training picture would inflate the accuracy.

    `copy_keys` (from `exact_copy_keys`, kept on the audit) saves looking the
    copies up again when the same records are split anew.
    """
    copy_keys = exact_copy_keys(records) if copy_keys is None else copy_keys
    by_label: dict[str, list[ImageRecord]] = {}
    for record in sorted(records, key=lambda r: r.relative):
        by_label.setdefault(record.label, []).append(record)
    result = []
    for label, members in sorted(by_label.items()):
        units = _copy_units(members, copy_keys)
        random.Random(f"{seed}:{label}").shuffle(units)
        count = len(members)
        val_count = min(max(1, round(count * val_split)), count - 1) if count >= 2 else 0
        in_val = 0
        for unit in units:
            split = "val" if in_val < val_count and count - in_val - len(unit) >= 1 else "train"
            in_val += len(unit) if split == "val" else 0
            result.extend(_with_split(record, split) for record in unit)
    return result


def _with_split(record: ImageRecord, split: str) -> ImageRecord:
    """The record in another split (`dataclasses.replace` costs several times as much, at 100,000 records)."""
    if record.split == split:
        return record
    return ImageRecord(record.path, record.relative, record.label, split, record.format, record.width, record.height,
                       record.needs_conversion, record.frames)


def exact_copy_keys(records: list[ImageRecord]) -> dict[str, str]:
    """Content hash of every file that has a same-size twin (only those can be copies)."""
    by_size: dict[int, list[ImageRecord]] = {}
    for record in records:
        try:
            by_size.setdefault(os.path.getsize(record.path), []).append(record)
        except OSError:
            continue
    twins = [record for same_size in by_size.values() if len(same_size) > 1 for record in same_size]
    digests = file_digests([record.path for record in twins])  # kept between audits: a new split reads no file
    return {record.relative: digest for record, digest in zip(twins, digests, strict=True) if digest is not None}


def _copy_units(members: list[ImageRecord], copy_keys: dict[str, str]) -> list[list[ImageRecord]]:
    """Group a class's records so exact copies form one unit, in name order."""
    units: dict[str, list[ImageRecord]] = {}
    for record in members:
        units.setdefault(copy_keys.get(record.relative, "file:" + record.relative), []).append(record)
    return list(units.values())
