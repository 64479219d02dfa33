"""Importing a pretrained weights file by hand, for a machine without internet, without trusting the file.

A weights file comes from a USB stick or a download page, and is loaded by the
app's server. So before anything is copied:

1. its HDF5 metadata alone is read: every dataset's declared size must fit the
   backbone (a 9 MB file may declare gigabytes; reading it would exhaust the
   server's memory);
2. its BatchNorm statistics are read (`weights_check`): a file saved from a
   model that never trained still holds the initial ones, and is refused;
3. its hash is compared with the one Keras publishes for that file, where Keras
   publishes one. A file with the right shapes but other numbers (random
   weights) then fails; where Keras publishes no hash, the import is labelled
   unverified;
4. it is loaded into the backbone in a child process whose memory is capped,
   so a file that still gets past (1) can end only that process.

Where it goes decides whom it can harm. An import stays in the importer's own
space (`backbones.own_weights_dir()`) and is used for their runs only. Only a
teacher, or the operator (personal mode, or the machine's command line with no
user), installs a file for everyone (the Keras cache), and only a verified one:
an unverified file is never installed for everyone, whoever imports it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import dataclass

from tlcore import paths
from tlcore.errors import InputError, NotAllowedError
from tlcore.model.backbones import BackboneSpec, get_backbone, keras_cache_dir, own_weights_dir, spec_for_weights_file
from tlcore.model.weights_check import check_trained

BYTES_PER_WEIGHT = 4  # float32
DECLARED_SIZE_SLACK = 1.5  # a file may hold a little more than the weights (optimizer-free h5 files hold none)
CHILD_MEMORY_LIMIT_BYTES = 6 * 1024**3  # address space of the checking process: TensorFlow itself reserves ~2.4 GB
CHILD_TIMEOUT_S = 300

# Where Keras keeps the published hashes of its weights files: module -> the dict's name.
_HASH_TABLES = {
    "keras.src.applications.efficientnet": "WEIGHTS_HASHES",
    "keras.src.applications.efficientnet_v2": "WEIGHTS_HASHES",
    "keras.src.applications.mobilenet_v3": "WEIGHTS_HASHES",
    "keras.src.applications.resnet": "WEIGHTS_HASHES",
}


@dataclass(frozen=True)
class ImportedWeights:
    """Where an imported weights file now is, whether its hash matched the one Keras publishes, and for whom it is."""

    path: pathlib.Path
    verified: bool
    for_everyone: bool = False

    @property
    def note(self) -> str:
        whom = "installed for everyone on this computer" if self.for_everyone else "kept for your own runs only"
        if self.verified:
            return f"{whom}; its hash matches the one Keras publishes for this file"
        return (f"{whom}; unverified: Keras publishes no hash for this file, so only its shapes and statistics were "
                "checked, and an unverified file is never installed for everyone")


def may_install_weights_for_everyone() -> bool:
    """True when the current user may install weights for everyone: a teacher, or the operator.

    The operator is whoever works with no user: personal mode (no accounts), or
    the machine's command line. A student never may.
    """
    user = paths.current_user()
    if user is None:
        return True
    from tlcore.classroom.accounts import is_teacher  # roles are the classroom's; it imports nothing of the model

    return is_teacher(user)


def import_weights(file_path: str | os.PathLike, backbone: str | None = None, replace: bool = False,
                   for_everyone: bool = False) -> ImportedWeights:
    """Check a weights file without trusting it, then copy it where the current user's runs find it.

    Args:
        file_path: an `.h5` file as Keras distributes it.
        backbone: which backbone it belongs to; guessed from the file name when
            omitted (the names Keras uses are unique).
        replace: let an unverified file replace one already in the user's own weights.
        for_everyone: install it for everyone on this computer (the Keras
            cache) rather than in the user's own space; only a teacher or the
            operator may, and only a verified file goes there (an unverified
            one stays in the user's own space, and the note says so).

    Returns:
        An `ImportedWeights` with the copy's path, whether it was verified and whether it is for everyone.

    Raises:
        InputError: missing file, unknown name, sizes or shapes that do not fit,
            untrained weights, a hash that differs from the published one, or
            an unverified file that would replace one already there.
        NotAllowedError: a student asked to install for everyone.
    """
    source = pathlib.Path(file_path)
    if not source.is_file():
        raise InputError(f"weights file {str(source)!r} does not exist; give the path of a downloaded .h5 file.")
    if for_everyone and not may_install_weights_for_everyone():
        raise NotAllowedError(
            "only a teacher can install weights for the whole class; import the file for your own runs instead "
            "(without 'for everyone'), or ask your teacher to install it."
        )
    spec, size = spec_for_weights_file(source.name, backbone)
    check_declared_sizes(source, spec)
    check_trained(source, spec.name)
    published = published_hash(spec.weights_file_for(size))
    if published is not None and not _hash_matches(source, published):
        raise InputError(
            f"the file {source.name!r} is not the one Keras publishes for backbone {spec.name!r} (its hash differs); "
            f"download {spec.weights_file_for(size)} again from the Keras site and import that."
        )
    _load_in_child_process(source, spec, size)
    verified = published is not None
    shared = for_everyone and verified
    destination = (keras_cache_dir() if shared else own_weights_dir()) / spec.weights_file_for(size)
    if not verified and destination.exists() and not replace and not _same_bytes(source, destination):
        raise InputError(
            f"your own weights for {spec.name!r} are already on this computer, and this file cannot be verified "
            "(Keras publishes no hash for it), so the file already there is kept; to replace it anyway, use `--replace`."
        )
    _copy_atomically(source, destination)
    return ImportedWeights(destination, verified=verified, for_everyone=shared)


def import_uploaded_weights(name: str, data, for_everyone: bool = False) -> ImportedWeights:
    """Import a weights file uploaded through the browser; the upload itself is removed, imported or refused.

    The file keeps its name (Keras finds weights by name), and once it is
    copied where runs find it, or refused, nothing of it is left in the user's
    uploads: a refused file neither counts against their limit nor makes the
    next upload of the right file take another name.

    Args:
        name: the file's name as the browser sent it.
        data: its bytes or a readable binary file.
        for_everyone: as for `import_weights`.

    Raises:
        InputError: as `save_uploaded_file` and `import_weights` raise.
    """
    from tlcore.data.uploads import remove_upload, save_uploaded_file

    saved = save_uploaded_file(name, data, keep_name=True)
    try:
        return import_weights(saved, for_everyone=for_everyone)
    finally:
        remove_upload(saved)


def _copy_atomically(source: pathlib.Path, destination: pathlib.Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".partial")
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


def check_declared_sizes(source: pathlib.Path, spec: BackboneSpec) -> None:
    """Refuse a file whose datasets declare more numbers than the backbone has, reading only its metadata."""
    import h5py

    declared = [0]

    def count(_name, item):
        if isinstance(item, h5py.Dataset):
            declared[0] += int(item.size) * int(item.dtype.itemsize)

    try:
        with h5py.File(source, "r") as handle:
            handle.visititems(count)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(
            f"the file {source.name!r} does not hold weights for backbone {spec.name!r} (it is not a readable HDF5 "
            f"weights file: {str(error)[:120]}); download the file named {spec.weights_file_for(spec.input_size)}."
        ) from None
    allowed = spec.params * BYTES_PER_WEIGHT * DECLARED_SIZE_SLACK + 1024**2
    if declared[0] > allowed:
        raise InputError(
            f"the file {source.name!r} declares {declared[0] / 1024**2:,.0f} MB of weights, but backbone {spec.name!r} "
            f"has {spec.params * BYTES_PER_WEIGHT / 1024**2:,.1f} MB; it is not that backbone's weights file."
        )


def published_hash(file_name: str) -> str | None:
    """The hash Keras publishes for one of its weights files (MD5 or SHA-256), or None where it publishes none."""
    for module_name, table_name in _HASH_TABLES.items():
        try:
            table = getattr(importlib.import_module(module_name), table_name)
        except (ImportError, AttributeError):
            continue
        for key, hashes in table.items():
            if file_name.startswith(key) or key in file_name:
                return hashes[1] if "notop" in file_name or "no_top" in file_name else hashes[0]
    return None


def _hash_matches(source: pathlib.Path, expected: str) -> bool:
    digest = hashlib.sha256() if len(expected) == 64 else hashlib.md5()  # as keras.utils.get_file decides
    with open(source, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


def _same_bytes(first: pathlib.Path, second: pathlib.Path) -> bool:
    return first.stat().st_size == second.stat().st_size and _hash_matches(first, _sha256(second))


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_in_child_process(source: pathlib.Path, spec: BackboneSpec, size: int) -> None:
    """Load the weights into the backbone in a memory-capped child process; an InputError if they do not fit."""
    command = [sys.executable, "-m", "tlcore.model.weights_import", str(source), spec.name, str(size)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                              preexec_fn=_cap_memory if os.name == "posix" else None)
    except subprocess.TimeoutExpired:
        raise InputError(f"checking the file {source.name!r} took over {CHILD_TIMEOUT_S} s; it is not a usable weights file.") from None
    if done.returncode != 0:
        reason = (done.stdout.strip().splitlines() or ["it could not be loaded (it ran out of memory or crashed)"])[-1]
        raise InputError(
            f"the file {source.name!r} does not hold weights for backbone {spec.name!r} ({reason[:200]}); download the "
            f"file named {spec.weights_file_for(size)} and import that."
        )


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_LIMIT_BYTES, CHILD_MEMORY_LIMIT_BYTES))


def _check_in_this_process(source: str, backbone: str, size: int) -> int:
    """The child process: build the backbone and load the file into it; exit 0 when it fits."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    spec = get_backbone(backbone)
    constructor = getattr(keras.applications, spec.constructor)
    model = constructor(weights=None, include_top=False, input_shape=(size, size, 3), **spec.constructor_kwargs)
    try:
        model.load_weights(source)
    except Exception as error:  # the reason goes back to the parent as the last stdout line
        print(f"{error.__class__.__name__}: {' '.join(str(error).split())[:200]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_check_in_this_process(sys.argv[1], sys.argv[2], int(sys.argv[3])))
