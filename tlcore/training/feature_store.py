"""Frozen-layer features kept between runs, so that trying again skips the feature pass.

In a classroom the same photos go through the same frozen backbone many times:
a second try with more epochs, another learning rate or less dropout. The
activations at the freeze boundary are the same every time, so after a run
computes them they are kept under `$TLCORE_HOME/cache/features`, and the next
run with the same frozen part and the same files trains on them at once.

An entry is valid only for exactly the computation that made it. Its key is a
hash of the frozen part (backbone, image size, cut point, the values of all its
weights) and of the software (tlcore, Keras, the backend and its version, the
dtype policy). Each image is known by its path, size and modification time, so
an edited photo is computed again. Augmented views are random per run and are
never kept. The store is only ever a shortcut: a missing, stale or unreadable
entry means computing the features as usual, and a failed write is ignored.

Each entry also carries a label in terms the Train page knows without
TensorFlow (backbone, image size, the lowest trainable block, versions), so
that its time estimate can say when a run will probably find its features
kept (`kept_images`); only the key decides whether a run uses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time

import numpy as np

from tlcore import paths

# 3: features computed with batch normalization folded where possible (tlcore.folding); they differ
# from earlier ones only by float rounding, but earlier entries are not mixed with new ones.
# 4: JPEGs decoded with the accurate integer transform (pipeline.decode_rgb): other pixels.
# 5: JPEGs at least twice the model's size decoded at a reduced scale (pipeline.decode_rgb): other pixels.
STORE_FORMAT = 5
DEFAULT_STORE_BUDGET_BYTES = 1_000_000_000  # all entries together; the least recently used go first
ENTRY_FILE = "entry.json"  # names the current version's files; replaced atomically


def store_dir() -> pathlib.Path:
    return paths.cache_dir() / "features"


def image_identity(path: str | os.PathLike) -> str:
    """A file as the store knows it: resolved path, size and modification time."""
    status = os.stat(path)
    return f"{os.path.realpath(path)}|{status.st_size}|{status.st_mtime_ns}"


def prefix_key(prefix, backbone: str, boundary: str) -> str:
    """A hash naming everything that decides the frozen part's output for an image."""
    import keras

    import tlcore

    weights = hashlib.sha256()
    for index, variable in enumerate(prefix.weights):  # by position: Keras numbers layer names per process
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        weights.update(f"{index}:{value.dtype}:{value.shape}".encode())
        weights.update(value.tobytes())
    description = {
        "format": STORE_FORMAT,
        "tlcore": tlcore.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "backend_version": _backend_version(),
        "dtype_policy": keras.config.dtype_policy().name,
        "backbone": backbone,
        "input_shape": list(prefix.input_shape[1:]),
        "output_shape": list(prefix.output_shape[1:]),
        "boundary": boundary,
        "weights": weights.hexdigest(),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


def _backend_version() -> str:
    import keras

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module is None:
        return "unknown"
    try:
        return __import__(module).__version__
    except Exception:
        return "unknown"


class FeatureStore:
    """The stored features of one frozen part: image identity -> feature row.

    An entry is a folder holding one version of two files, the features
    (`features-<version>.npy`, read memory-mapped, so a lookup reads only the
    rows it needs) and the image identities in row order, plus `entry.json`
    naming the current version. A write makes a new version and then replaces
    `entry.json` atomically, so a reader sees the old entry or the new one,
    never half of one.

    Args:
        key: from `prefix_key`.
        directory: the store's folder (default `$TLCORE_HOME/cache/features`).
        budget_bytes: the most all entries together may take on disk.
        label: from `entry_label`, for the Train page's estimate.
    """

    def __init__(self, key: str, directory: pathlib.Path | None = None, budget_bytes: int = DEFAULT_STORE_BUDGET_BYTES,
                 label: dict | None = None):
        self.key = key
        self.label = label  # from `entry_label`, written with each version
        self.directory = pathlib.Path(directory) if directory else store_dir()
        self.budget_bytes = budget_bytes
        self._identities: list[str] | None = None
        self._features: np.ndarray | None = None

    @property
    def folder(self) -> pathlib.Path:
        return self.directory / self.key

    @property
    def path(self) -> pathlib.Path:
        return self.folder / ENTRY_FILE

    def lookup(self, identities: list[str]) -> np.ndarray | None:
        """The features of these images in this order, or None unless all are stored."""
        if not identities or not self._load():
            return None
        row_of = {identity: row for row, identity in enumerate(self._identities)}
        rows = [row_of.get(identity) for identity in identities]
        if any(row is None for row in rows):
            return None
        _touch(self.path)  # recently used: evicted last
        return np.asarray(self._features[np.asarray(rows)])

    def add(self, identities: list[str], features: np.ndarray) -> bool:
        """Keep these images' features (replacing older rows of the same images).

        When the older images and these would not fit in the budget together,
        only these are kept.

        Returns:
            Whether the entry was written; False when these alone exceed the
            budget, do not fit the space the operator lets this user fill
            (`TLCORE_MAX_UPLOAD_MB`, which counts kept features), or the disk
            refused them (the run goes on either way).
        """
        if not len(identities) or len(identities) != len(features):
            return False
        row_bytes = int(np.prod(features.shape[1:])) * 4
        if len(identities) * row_bytes > self.budget_bytes:
            return False
        keep_identities, keep_rows = [], []
        if self._load():
            new = set(identities)
            for row, identity in enumerate(self._identities):
                if identity not in new:
                    keep_identities.append(identity)
                    keep_rows.append(row)
            if (len(keep_rows) + len(identities)) * row_bytes > self.budget_bytes:
                keep_identities, keep_rows = [], []  # the images of this run matter most: drop the older ones
        if not self._fits_the_users_space((len(keep_rows) + len(identities)) * row_bytes):
            return False
        try:
            self._write(keep_identities + list(identities), keep_rows, features)
            evict_least_recently_used(self.directory, self.budget_bytes, keep=self.folder)
        except OSError:
            return False
        return True

    def _fits_the_users_space(self, entry_bytes: int) -> bool:
        """Whether a new version of `entry_bytes` fits the space the operator lets this user fill (the old one goes)."""
        from tlcore.classroom import quotas
        from tlcore.errors import InputError

        try:
            left = quotas.space_left()
        except InputError:  # a limit that is not a number: keeping features is only a shortcut, so keep none
            return False
        if left is None:
            return True
        current = sum(quotas.disk_bytes(path.stat().st_size) for path in self.folder.glob("*") if path.is_file()) \
            if self.folder.is_dir() else 0
        return quotas.disk_bytes(entry_bytes) + 2 * quotas.BLOCK_BYTES <= left + current  # + identities and entry files

    def _load(self) -> bool:
        if self._identities is not None:
            return True
        try:
            version = json.loads(self.path.read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        try:
            features = np.load(self.folder / f"features-{version}.npy", mmap_mode="r", allow_pickle=False)
            identities = json.loads((self.folder / f"identities-{version}.json").read_text(encoding="utf-8"))
            if not isinstance(identities, list) or len(identities) != len(features):
                raise ValueError("rows and identities differ in number")
        except (FileNotFoundError, EOFError, ValueError):  # damaged (a crash mid-write, a full disk): compute again
            shutil.rmtree(self.folder, ignore_errors=True)
            return False
        except OSError:  # unreadable just now (permissions, too many open files): leave it be
            return False
        self._identities, self._features = [str(item) for item in identities], features
        return True

    def _write(self, identities: list[str], keep_rows: list[int], features: np.ndarray) -> None:
        """Write a new version: the kept old rows, then `features`, streamed into a memory-mapped file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        version = f"{os.getpid()}-{time.time_ns()}"
        array_path = self.folder / f"features-{version}.npy"
        try:
            output = np.lib.format.open_memmap(array_path, mode="w+", dtype="float32",
                                               shape=(len(identities), *features.shape[1:]))
            for start in range(0, len(keep_rows), 1024):
                rows = keep_rows[start : start + 1024]  # fewer than 1024 at the end: the slice of output must match
                output[start : start + len(rows)] = self._features[rows]
            for start in range(0, len(features), 1024):
                output[len(keep_rows) + start : len(keep_rows) + start + 1024] = features[start : start + 1024]
            output.flush()
            del output
            (self.folder / f"identities-{version}.json").write_text(json.dumps(identities), encoding="utf-8")
            temporary = self.folder / f".{ENTRY_FILE}.{version}.tmp"
            temporary.write_text(json.dumps({"version": version, "label": self.label}), encoding="utf-8")
            os.replace(temporary, self.path)
        except BaseException:
            for leftover in self.folder.glob(f"*{version}*"):
                leftover.unlink(missing_ok=True)
            raise
        self._identities, self._features = None, None  # read back from the new version when needed
        for old in self.folder.iterdir():
            if old.name != ENTRY_FILE and version not in old.name:
                old.unlink(missing_ok=True)


def entry_label(backbone: str, image_size: int, trainable_blocks: set[str]) -> dict:
    """What an entry was made for, in terms known without TensorFlow.

    The frozen part ends below the lowest trainable block that has weights
    (the whole backbone when none has), so that block names the cut.
    """
    import tlcore
    from tlcore.model.blocks import block_table

    lowest = next((row["name"] for row in block_table(backbone)
                   if row["name"] in trainable_blocks and row.get("learnable_params")), None)
    return {"format": STORE_FORMAT, "tlcore": tlcore.__version__, "keras": _installed_version("keras"),
            "backbone": backbone, "image_size": int(image_size), "lowest_trainable_block": lowest}


def kept_images(label: dict, identities: list[str], directory: pathlib.Path | None = None) -> int:
    """How many of these images have features kept in an entry with this label (the most in any one).

    A hint for time estimates: the entry is used only if its key also matches
    (the exact weights), which needs TensorFlow to check. Never raises.
    """
    wanted = set(identities)
    best = 0
    for entry in (pathlib.Path(directory) if directory else store_dir()).glob(f"*/{ENTRY_FILE}"):
        try:
            description = json.loads(entry.read_text(encoding="utf-8"))
            if description.get("label") != label:
                continue
            stored = json.loads((entry.parent / f"identities-{description['version']}.json").read_text(encoding="utf-8"))
            best = max(best, len(wanted.intersection(map(str, stored))))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return best


def kept_for_run(config, audit) -> int:
    """How many of a run's training and validation images probably have their features kept already.

    For the Train page's time estimate, without TensorFlow. Counts the first
    phase's features (the head alone in a two-phase run); augmented training
    views are never kept, so then only validation images count.

    Args:
        config: the run's `TrainConfig`.
        audit: its `DatasetAudit`.
    """
    from tlcore.model.blocks import block_table, parse_freeze
    from tlcore.training.feature_cache import views_per_image

    try:
        if config.two_phase:
            trainable = set()
        else:
            trainable = parse_freeze(config.freeze, [row["name"] for row in block_table(config.backbone)])
        splits = ("train", "val") if views_per_image(config.augment) == 1 else ("val",)
        identities = [image_identity(record.path) for split in splits for record in audit.split_records(split)]
        label = entry_label(config.backbone, config.resolved_image_size, trainable)
    except (OSError, ValueError):  # a file gone, an unknown option: the estimate simply assumes nothing is kept
        return 0
    return kept_images(label, identities)


def _installed_version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _touch(path: pathlib.Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def evict_least_recently_used(directory: pathlib.Path, budget_bytes: int, keep: pathlib.Path | None = None) -> None:
    """Delete whole entries, least recently used first, until all fit the budget."""
    entries = []
    for entry in directory.glob(f"*/{ENTRY_FILE}"):
        try:
            used = entry.stat().st_mtime
        except OSError:
            continue
        entries.append((used, _folder_bytes(entry.parent), entry.parent))
    total = sum(size for _, size, _ in entries)
    for _, size, folder in sorted(entries):
        if total <= budget_bytes:
            break
        if keep is not None and folder == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size


def _folder_bytes(folder: pathlib.Path) -> int:
    total = 0
    for path in folder.iterdir():
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def stored_bytes(directory: pathlib.Path | None = None) -> int:
    """Disk space the store takes now."""
    directory = pathlib.Path(directory) if directory else store_dir()
    return sum(_folder_bytes(folder) for folder in directory.iterdir() if folder.is_dir()) if directory.is_dir() else 0


class ConcatenatedRows:
    """Several arrays of rows read as one by slices, without copying them into one.

    What `FeatureStore.add` takes for the features of several splits, some of
    which may be memory-mapped files too large to read whole.
    """

    def __init__(self, parts: list):
        self.parts = parts
        self.shape = (sum(len(part) for part in parts), *parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        pieces, offset = [], 0
        for part in self.parts:
            low, high = max(start - offset, 0), min(stop - offset, len(part))
            if low < high:
                pieces.append(np.asarray(part[low:high]))
            offset += len(part)
        return np.concatenate(pieces) if pieces else np.zeros((0, *self.shape[1:]), dtype="float32")


__all__ = ["FeatureStore", "ConcatenatedRows", "prefix_key", "image_identity", "evict_least_recently_used", "stored_bytes", "store_dir"]
