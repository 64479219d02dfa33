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
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

import keras
import numpy as np

from tlcore import paths

STORE_FORMAT = 1
DEFAULT_STORE_BUDGET_BYTES = 1_000_000_000  # all entries together; the least recently used go first
ENTRY_FILE = "features.npz"


def store_dir() -> pathlib.Path:
    return paths.cache_dir() / "features"


def image_identity(path: str | os.PathLike) -> str:
    """A file as the store knows it: resolved path, size and modification time."""
    status = os.stat(path)
    return f"{os.path.realpath(path)}|{status.st_size}|{status.st_mtime_ns}"


def prefix_key(prefix, backbone: str, boundary: str) -> str:
    """A hash naming everything that decides the frozen part's output for an image."""
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

    Args:
        key: from `prefix_key`.
        directory: the store's folder (default `$TLCORE_HOME/cache/features`).
        budget_bytes: the most all entries together may take on disk.
    """

    def __init__(self, key: str, directory: pathlib.Path | None = None, budget_bytes: int = DEFAULT_STORE_BUDGET_BYTES):
        self.key = key
        self.directory = pathlib.Path(directory) if directory else store_dir()
        self.budget_bytes = budget_bytes
        self._identities: list[str] | None = None
        self._features: np.ndarray | None = None

    @property
    def path(self) -> pathlib.Path:
        return self.directory / self.key / ENTRY_FILE

    def lookup(self, identities: list[str]) -> np.ndarray | None:
        """The features of these images in this order, or None unless all are stored."""
        if not identities or not self._load():
            return None
        row_of = {identity: row for row, identity in enumerate(self._identities)}
        rows = [row_of.get(identity) for identity in identities]
        if any(row is None for row in rows):
            return None
        _touch(self.path)  # recently used: evicted last
        return self._features[np.asarray(rows)]

    def add(self, identities: list[str], features: np.ndarray) -> bool:
        """Keep these images' features (replacing older rows of the same images).

        Returns:
            Whether the entry was written; False when it would exceed the
            budget or the disk refused it (the run goes on either way).
        """
        if not len(identities) or len(identities) != len(features):
            return False
        keep_identities, keep_rows = [], []
        if self._load():
            new = set(identities)
            for row, identity in enumerate(self._identities):
                if identity not in new:
                    keep_identities.append(identity)
                    keep_rows.append(row)
        row_bytes = int(np.prod(features.shape[1:])) * 4
        # Checked before copying: the features may be a large memory-mapped file.
        if len(identities) * row_bytes > self.budget_bytes:
            return False
        if (len(keep_rows) + len(identities)) * row_bytes > self.budget_bytes:
            keep_identities, keep_rows = [], []  # the images of this run matter most: drop the older ones
        merged_identities = keep_identities + list(identities)
        merged = np.asarray(features, dtype="float32")
        if keep_rows:
            merged = np.concatenate([self._features[keep_rows], merged])
        try:
            self._write(merged_identities, merged)
        except OSError:
            return False
        self._identities, self._features = merged_identities, merged
        evict_least_recently_used(self.directory, self.budget_bytes, keep=self.path)
        return True

    def _load(self) -> bool:
        if self._identities is not None:
            return True
        if not self.path.is_file():
            return False
        try:
            with np.load(self.path, allow_pickle=False) as entry:
                features, identities = entry["features"], [str(item) for item in entry["identities"]]
            if len(features) != len(identities):
                raise ValueError("rows and identities differ in number")
        except Exception:  # unreadable (a crash mid-write, a full disk): compute again
            self.path.unlink(missing_ok=True)
            return False
        self._identities, self._features = identities, features
        return True

    def _write(self, identities: list[str], features: np.ndarray) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{ENTRY_FILE}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                np.savez(handle, features=features, identities=np.asarray(identities, dtype=str))
            os.replace(temporary, self.path)  # readers see the old entry or the new one, never half
        finally:
            temporary.unlink(missing_ok=True)


def _touch(path: pathlib.Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def evict_least_recently_used(directory: pathlib.Path, budget_bytes: int, keep: pathlib.Path | None = None) -> None:
    """Delete whole entries, least recently used first, until all fit the budget."""
    entries = []
    for path in directory.glob(f"*/{ENTRY_FILE}"):
        try:
            status = path.stat()
        except OSError:
            continue
        entries.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= budget_bytes:
            break
        if keep is not None and path == keep:
            continue
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass
        total -= size


def stored_bytes(directory: pathlib.Path | None = None) -> int:
    """Disk space the store takes now."""
    directory = pathlib.Path(directory) if directory else store_dir()
    return sum(path.stat().st_size for path in directory.glob(f"*/{ENTRY_FILE}") if path.is_file())


__all__ = ["FeatureStore", "prefix_key", "image_identity", "evict_least_recently_used", "stored_bytes", "store_dir"]
