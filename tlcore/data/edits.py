"""What the user changed about a dataset without touching it: files left out, files counted in another class.

A `DatasetEdits` is a record, never an action on the files: the audit applies
it (an excluded file is skipped, a relabelled file keeps its path and gets the
class the user chose), a run copies it into its config (`TrainConfig.excluded_files`
and `TrainConfig.relabels`), so the run reproduces from its config alone. The
app keeps one per dataset; `write_edits` and `read_edits` are the edits file
that `tlcore train --edits FILE` reads (a run's config.json reads the same way).

Imports nothing from tlcore but the errors.

Example:
    edits = DatasetEdits().excluding(["cats/blurry.jpg"]).relabelling("cats/dog_photo.jpg", "dogs")
    write_edits("edits.json", edits)
    audit = audit_dataset("photos/", excluded_files=edits.excluded_files, relabels=edits.relabels)
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tlcore.errors import InputError

EDITS_VERSION = 1


def normalise_relative(name: str) -> str:
    """A dataset-relative path as the audit spells it: forward slashes, no leading "./"."""
    text = os.fspath(name).replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return pathlib.PurePosixPath(text).as_posix().lstrip("/") if text else ""


def relabel_pairs(relabels) -> tuple[tuple[str, str], ...]:
    """Relabels as sorted (file, class) pairs, from a mapping or pairs; one class per file (the last wins).

    Raises:
        InputError: an entry is not a (file, class) pair of non-empty text.
    """
    if relabels is None:
        return ()
    items = relabels.items() if isinstance(relabels, Mapping) else relabels
    if isinstance(items, (str, bytes)):
        raise InputError(f"relabels must be file -> class pairs (e.g. {{'cats/x.jpg': 'dogs'}}), got {relabels!r}.")
    chosen: dict[str, str] = {}
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not all(isinstance(part, str) for part in item):
            raise InputError(f"a relabel must be a (file, class) pair such as ('cats/x.jpg', 'dogs'), got {item!r}.")
        file, label = normalise_relative(item[0]), item[1].strip()
        if not file or not label:
            raise InputError(f"a relabel needs a file and a class, got {item!r}; e.g. cats/x.jpg=dogs.")
        chosen[file] = label
    return tuple(sorted(chosen.items()))


def parse_relabel(text: str) -> tuple[str, str]:
    """`"cats/x.jpg=dogs"` -> `("cats/x.jpg", "dogs")`, as the CLI's `--relabel FILE=CLASS` gives it.

    Raises:
        InputError: no `=`, or an empty side.
    """
    file, separator, label = str(text).rpartition("=")
    if not separator or not file.strip() or not label.strip():
        raise InputError(f"--relabel takes FILE=CLASS (a file relative to the dataset, then its class), got {text!r}; "
                         "e.g. --relabel cats/tabby_dog.jpg=dogs.")
    return relabel_pairs([(file.strip(), label.strip())])[0]


@dataclass(frozen=True)
class DatasetEdits:
    """Files to leave out and files to count in another class; the files themselves stay as they are.

    Args:
        excluded_files: paths relative to the dataset folder, left out of training and validation.
        relabels: (path, class) pairs: the file is used with that class instead of its folder's.
            A file that is also excluded is left out.
    """

    excluded_files: tuple[str, ...] = ()
    relabels: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        excluded = self.excluded_files
        if isinstance(excluded, (str, os.PathLike)):
            excluded = (excluded,)
        files = sorted({normalise_relative(name) for name in excluded} - {""})
        object.__setattr__(self, "excluded_files", tuple(files))
        object.__setattr__(self, "relabels", relabel_pairs(self.relabels))

    @property
    def relabel_map(self) -> dict[str, str]:
        """{file: class} of the relabels."""
        return dict(self.relabels)

    def __bool__(self) -> bool:
        return bool(self.excluded_files or self.relabels)

    def count(self) -> int:
        """How many files are changed (left out or moved)."""
        return len(set(self.excluded_files) | set(self.relabel_map))

    def excluding(self, files: Iterable[str]) -> DatasetEdits:
        """These edits with more files left out."""
        return DatasetEdits(tuple(self.excluded_files) + tuple(files), self.relabels)

    def including(self, files: Iterable[str]) -> DatasetEdits:
        """These edits with files put back (their exclusion and any relabel undone)."""
        undone = {normalise_relative(name) for name in files}
        return DatasetEdits(
            tuple(name for name in self.excluded_files if name not in undone),
            tuple(pair for pair in self.relabels if pair[0] not in undone),
        )

    def relabelling(self, file: str, label: str) -> DatasetEdits:
        """These edits with `file` counted in class `label` (and no longer left out)."""
        file = normalise_relative(file)
        kept = tuple(name for name in self.excluded_files if name != file)
        return DatasetEdits(kept, (*self.relabels, (file, label)))

    def merged(self, other: DatasetEdits) -> DatasetEdits:
        """Both sets of edits; where both relabel a file, `other`'s class wins."""
        return DatasetEdits(self.excluded_files + other.excluded_files, self.relabels + other.relabels)

    def to_dict(self) -> dict:
        return {"version": EDITS_VERSION, "excluded_files": list(self.excluded_files), "relabels": self.relabel_map}

    @classmethod
    def from_dict(cls, data: Mapping) -> DatasetEdits:
        """Read edits from a dict: an edits file, or a run's config (its `excluded_files` and `relabels`).

        Raises:
            InputError: the dict holds neither, or they have the wrong shape.
        """
        if not isinstance(data, Mapping) or not ({"excluded_files", "relabels"} & set(data)):
            raise InputError("an edits file is a JSON object with 'excluded_files' (a list of files) and/or "
                             "'relabels' ({file: class}); the app's Data page downloads one.")
        excluded = data.get("excluded_files") or []
        if not isinstance(excluded, list) or not all(isinstance(name, str) for name in excluded):
            raise InputError(f"'excluded_files' must be a list of file paths, got {excluded!r}.")
        return cls(tuple(excluded), relabel_pairs(data.get("relabels") or {}))


def read_edits(path: str | os.PathLike) -> DatasetEdits:
    """The edits in a JSON file: an edits file the app wrote, or a run's config.json.

    Raises:
        InputError: the file is missing, is not JSON, or holds no edits.
    """
    try:
        data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"the edits file {str(path)!r} does not exist; give the JSON file the app's Data page "
                         "downloads, or a run's config.json.") from None
    except (OSError, ValueError) as error:
        raise InputError(f"the edits file {str(path)!r} cannot be read as JSON ({error}).") from None
    return DatasetEdits.from_dict(data)


def write_edits(path: str | os.PathLike, edits: DatasetEdits) -> pathlib.Path:
    """Write `edits` as JSON, atomically (a reader never sees half a file); returns the path."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(edits.to_dict(), file, indent=2, ensure_ascii=False)
        os.replace(temporary, target)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return target
