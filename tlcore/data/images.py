"""Recognise and load images by their content, never by their file extension.

Users hand us folders of photos straight from phones, cameras, scanners and
web downloads. Extensions lie (a PNG saved as `.jpg`, an HTML error page saved
as `.png`), files get cut short by interrupted copies, and a tiny file can
declare billions of pixels. This module looks at every file once, says in plain
language why a file has to be skipped, and tells the data pipeline which files
TensorFlow can decode by itself and which must first be converted to PNG.

`check_image` is the fast look used when scanning a whole folder;
`load_rgb` and `convert_to_png` do the full decode for the files that need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pathlib
import stat
import tempfile
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from PIL import Image, UnidentifiedImageError

from tlcore.data.image_formats import (
    JPEG_FORMATS,
    ORIENTATIONS_SWAPPING_SIDES,
    UnusableImage,
    apply_orientation,
    describe_error,
    describe_non_image,
    exif_orientation,
    jpeg_reduction,
    needs_conversion,
    pillow_bomb_reason,
    to_rgb,
    too_large_reason,
)
from tlcore.errors import InputError

MAX_PIXELS_DEFAULT = 100_000_000
MIN_THUMBNAIL_SIDE = 4  # a thumbnail thinner than this is a sliver, not something to look at


_HASH_CHUNK_BYTES = 1024 * 1024


_HEADER_BYTES = 64


# JPEG can decode at 1/2, 1/4 or 1/8 scale, which reads every byte of the file
# (so truncation is still caught) but is many times faster on big photos.
_JPEG_CHECK_SIZE = (256, 256)


_IGNORED_NAMES_LOWERCASE = frozenset({"__macosx", "__pycache__", "thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ImageCheck:
    """What one look at a file found, and whether it can be used for training.

    Attributes:
        path: The file that was checked, as a string.
        ok: True when the file is a complete, decodable image of allowed size.
        reason: Why the file is skipped, in plain language; None when `ok`.
        format: Pillow's format name ('JPEG', 'PNG', 'GIF', ...); None when
            the file could not be opened as an image.
        mode: Pillow's mode as opened ('RGB', 'L', 'P', 'CMYK', 'I;16', ...).
        width: Width as displayed, that is after EXIF orientation is applied.
        height: Height as displayed.
        frames: 1, or the number of frames of an animated GIF or WebP.
        needs_conversion: True when TensorFlow's own decoder would not give the
            same pixels as `load_rgb`, so the file must go through
            `convert_to_png` before it reaches the tf.data pipeline.
        exif_orientation: The EXIF orientation (1 to 8); 1 when absent or invalid.
    """

    path: str
    ok: bool
    reason: str | None
    format: str | None
    mode: str | None
    width: int | None
    height: int | None
    frames: int
    needs_conversion: bool
    exif_orientation: int


def is_ignored_name(name: str) -> bool:
    """Tell whether a folder entry is hidden or system clutter to skip silently.

    Operating systems and tools leave files beside photos (`.DS_Store`,
    `Thumbs.db`, `__MACOSX/`, `._photo.jpg` resource forks, notebook
    checkpoints). They are not the user's data, so they are neither used nor
    reported as skipped.

    Args:
        name: One path component (a file or folder name, not a whole path).

    Returns:
        True for names starting with '.', and for `__MACOSX`, `__pycache__`,
        `Thumbs.db` and `desktop.ini` in any letter case.
    """
    return name.startswith(".") or name.lower() in _IGNORED_NAMES_LOWERCASE


def file_sha256(path: str | os.PathLike) -> str:
    """Compute the SHA-256 of a file's bytes, reading it in 1 MiB chunks.

    Used to name cache entries by content, so a renamed or moved file reuses
    its cached conversion and an edited file never reuses a stale one.

    Args:
        path: The file to hash.

    Returns:
        The digest as 64 lowercase hexadecimal characters.

    Raises:
        OSError: If the file cannot be opened or read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS_DEFAULT, on_picture=None) -> ImageCheck:
    """Look at one file and decide, by its content, whether it is a usable image.

    The file is opened once and really decoded (JPEGs at reduced scale, which
    still reads every byte), so truncated and corrupt files are caught here,
    while scanning, rather than in the middle of training.

    Args:
        path: The file to check.
        max_pixels: Largest width x height accepted, checked from the header
            before any decoding. Defaults to `MAX_PIXELS_DEFAULT`.
        on_picture: called with the decoded picture exactly as
            `load_rgb(path, preview=True)` gives it, so a perceptual hash
            costs no second decode. Defaults to None.

    Returns:
        An `ImageCheck`. A bad file never raises: it comes back with
        `ok=False` and a plain-language `reason`.
    """
    path_text = os.fspath(path)
    try:
        with _open_regular_file(path_text) as file, _bomb_warnings_silenced():
            header = _read_header(file)
            with _open_image(file, header, max_pixels) as image:
                return _inspect_image(path_text, image, header, on_picture)
    except UnusableImage as problem:
        return _skipped_check(path_text, str(problem))


def perceptual_hash(picture: Image.Image) -> str:
    """The 64-bit perceptual hash (`imagehash.phash`) of a picture, as 16 hex digits (JSON and SQLite keep 64-bit numbers poorly)."""
    import imagehash  # only the duplicate search and the check need it
    import numpy as np

    bits = imagehash.phash(picture).hash.flatten()
    return np.packbits(bits).tobytes().hex()


def load_rgb(
    path: str | os.PathLike,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    *,
    preview: bool = False,
    image_size: int | None = None,
) -> Image.Image:
    """Decode an image the way training sees it: upright, 8-bit RGB, first frame.

    EXIF orientation is applied, as `ImageOps.exif_transpose` would. 16-bit
    images are scaled to 0..255 rather than clipped (Pillow's plain
    conversion turns them white); alpha is dropped, as TensorFlow's
    `decode_image(channels=3)` drops it, so converted and natively decoded
    files agree.

    Args:
        path: The image file.
        max_pixels: Largest width x height accepted. Defaults to
            `MAX_PIXELS_DEFAULT`.
        preview: Decode JPEGs at a reduced scale (down to about 256 px a
            side), as `check_image` does: enough for thumbnails and
            perceptual hashes, and several times faster on camera photos.
            Defaults to False (full resolution).
        image_size: The model's input size: a JPEG is decoded at the
            largest reduced scale that keeps both sides at least this size
            (`tlcore.export.pictures.jpeg_reduction`), as training decodes
            it. Defaults to None (full resolution).

    Returns:
        A loaded `PIL.Image.Image` in mode 'RGB', independent of the file.

    Raises:
        InputError: If the file is missing, unreadable, not an image,
            truncated or corrupt, or too large.
    """
    path_text = os.fspath(path)
    try:
        with _open_regular_file(path_text) as file, _bomb_warnings_silenced():
            header = _read_header(file)
            with _open_image(file, header, max_pixels) as image:
                _decode(image, preview=preview, image_size=image_size)
                orientation = exif_orientation(image)
                rgb_image = to_rgb(image)
    except UnusableImage as problem:
        raise _unusable_image_error(path_text, str(problem)) from None
    return apply_orientation(rgb_image, orientation)


def thumbnail_jpeg(source: str | os.PathLike | bytes, size: int = 160) -> bytes | None:
    """A small JPEG of a picture (a file, or an upload's bytes), upright as training sees it.

    Decoding goes through `load_rgb`, so a decompression bomb or a file that
    is no picture is refused the same way as everywhere else.

    Returns:
        The JPEG's bytes, or None when the picture cannot be read or is too
        thin to show (60000 pixels wide and 1 high shrinks to nothing).
    """
    try:
        with _as_file(source) as path:
            image = load_rgb(path, preview=True)
        image.thumbnail((size, size))
        if min(image.size) < MIN_THUMBNAIL_SIDE:
            return None
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    except (InputError, OSError, ValueError):
        return None
    return buffer.getvalue()


def picture_size(source: str | os.PathLike | bytes) -> tuple[int, int] | None:
    """A picture's (width, height) as shown, upright by its EXIF orientation; None when it is no usable picture.

    Args:
        source: a file, or an upload's bytes.
    """
    try:
        with _as_file(source) as path:
            check = check_image(path)
    except OSError:
        return None
    return (check.width, check.height) if check.ok and check.width and check.height else None


@contextlib.contextmanager
def _as_file(source: str | os.PathLike | bytes) -> Iterator[str | os.PathLike]:
    """The source itself when it is a path; bytes in a temporary file, removed afterwards."""
    if not isinstance(source, (bytes, bytearray, memoryview)):
        yield source
        return
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "picture"
        path.write_bytes(bytes(source))
        yield path


def convert_to_png(
    path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    *,
    image_size: int | None = None,
) -> pathlib.Path:
    """Save an image TensorFlow cannot decode natively as an 8-bit RGB PNG.

    The PNG is named by the SHA-256 of the source bytes, so each distinct file
    is converted once and later runs reuse the result. It is written to a
    hidden temporary file and then renamed into place, so an interrupted
    conversion never leaves a half-written PNG under the final name.

    Args:
        path: The source image.
        cache_dir: Folder for converted images; created if missing.
        max_pixels: Largest width x height accepted. Defaults to
            `MAX_PIXELS_DEFAULT`.
        image_size: The model's input size: a JPEG is converted at the
            reduced scale training decodes it at (see `load_rgb`), so an
            EXIF-rotated phone photo costs a small PNG, not a 12-megapixel
            one. Defaults to None (full resolution).

    Returns:
        The path `cache_dir / "<sha256>.png"`, or `"<sha256>-1of<N>.png"`
        for a JPEG reduced N times.

    Raises:
        InputError: If the source is not a usable image (see `load_rgb`).
    """
    path_text = os.fspath(path)
    reduction = _jpeg_reduction(path_text, max_pixels, image_size)
    scale = "" if reduction == 1 else f"-1of{reduction}"
    target = pathlib.Path(cache_dir) / f"{_source_digest(path_text)}{scale}.png"
    if target.exists():
        return target
    rgb_image = load_rgb(path_text, max_pixels, image_size=image_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_png_atomically(rgb_image, target)
    return target


def _jpeg_reduction(path_text: str, max_pixels: int, image_size: int | None) -> int:
    """The reduced scale (1, 2, 4 or 8) `load_rgb` decodes a file at for `image_size`, from its header only."""
    if image_size is None:
        return 1
    try:
        with _open_regular_file(path_text) as file, _bomb_warnings_silenced():
            with _open_image(file, _read_header(file), max_pixels) as image:
                if image.format not in JPEG_FORMATS:
                    return 1
                return jpeg_reduction(*image.size, image_size)
    except UnusableImage as problem:
        raise _unusable_image_error(path_text, str(problem)) from None


def _source_digest(path_text: str) -> str:
    """Hash a source image, turning file-system failures into an `InputError`."""
    try:
        with _open_regular_file(path_text):
            pass
        return file_sha256(path_text)
    except UnusableImage as problem:
        raise _unusable_image_error(path_text, str(problem)) from None
    except OSError as error:
        raise _unusable_image_error(path_text, _unreadable_reason(error)) from None


def _write_png_atomically(rgb_image: Image.Image, target: pathlib.Path) -> None:
    """Write a PNG beside `target` under a hidden name, then rename it over `target`."""
    handle, temporary_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".png.partial")
    try:
        with os.fdopen(handle, "wb") as file:
            # Level 1 is several times faster than the default and the files
            # are a private cache, so the larger size is the better trade.
            rgb_image.save(file, format="PNG", compress_level=1)
        os.replace(temporary_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary_name)
        raise


def _open_regular_file(path_text: str) -> BinaryIO:
    """Open a file for reading after making sure it is a non-empty regular file.

    Checking first matters: opening a folder fails with an unclear message,
    and opening a named pipe would block forever.

    Raises:
        UnusableImage: With the plain reason the file cannot be read.
    """
    try:
        status = os.stat(path_text)
    except FileNotFoundError:
        raise UnusableImage("file not found") from None
    except (OSError, ValueError) as error:
        raise UnusableImage(_unreadable_reason(error)) from None
    if stat.S_ISDIR(status.st_mode):
        raise UnusableImage("not a file (it is a folder)")
    if not stat.S_ISREG(status.st_mode):
        raise UnusableImage("not a regular file")
    if status.st_size == 0:
        raise UnusableImage("empty file (0 bytes)")
    try:
        return open(path_text, "rb")
    except OSError as error:
        raise UnusableImage(_unreadable_reason(error)) from None


def _unreadable_reason(error: Exception) -> str:
    """Describe why a file could not be read, without a traceback's jargon."""
    if isinstance(error, PermissionError):
        return "unreadable: permission denied"
    return f"unreadable: {getattr(error, 'strerror', None) or error}"


@contextlib.contextmanager
def _bomb_warnings_silenced() -> Iterator[None]:
    """Keep Pillow's decompression-bomb warning from printing.

    Our own `max_pixels` check decides what is too large and reports it as a
    skip reason; the warning would only be noise on the user's console.
    `catch_warnings` is not thread-safe, and folders are scanned from a thread
    pool: overlapping uses can at worst leave this one "ignore" filter
    installed for the process, which is harmless because the size check and
    Pillow's hard limit do the protecting.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _read_header(file: BinaryIO) -> bytes:
    """Read the first bytes of a file and rewind it, for content sniffing.

    Raises:
        UnusableImage: If the file cannot be read (a failing disk, a network drive gone).
    """
    try:
        header = file.read(_HEADER_BYTES)
        file.seek(0)
    except OSError as error:
        raise UnusableImage(_unreadable_reason(error)) from None
    return header


def _open_image(file: BinaryIO, header: bytes, max_pixels: int) -> Image.Image:
    """Identify an image from its header and refuse it if it declares too many pixels.

    Only the header is read here; nothing is decoded until the size is known
    to be acceptable.

    Raises:
        UnusableImage: If the file is not an image or is too large.
    """
    try:
        image = Image.open(file)
    except UnidentifiedImageError:
        raise UnusableImage(describe_non_image(header)) from None
    except Image.DecompressionBombError as error:
        raise UnusableImage(pillow_bomb_reason(error, header, max_pixels)) from None
    except Exception as error:  # Pillow plugins raise many types on bad headers.
        raise UnusableImage(f"truncated or corrupt image: {describe_error(error)}") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UnusableImage(too_large_reason(width, height, max_pixels))
    return image


def _decode(image: Image.Image, preview: bool, image_size: int | None = None) -> None:
    """Decode the pixels, which is the only reliable way to find truncated files.

    Args:
        image: An opened, not yet loaded image.
        preview: Decode JPEGs at reduced scale; the size and mode the image
            reports change afterwards, so read them before calling this.
        image_size: Decode JPEGs at the reduced scale that keeps both sides at
            least this size (Pillow's `draft` picks `jpeg_reduction`'s scale).

    Raises:
        UnusableImage: If decoding fails.
    """
    try:
        if preview and image.format in JPEG_FORMATS:
            image.draft("RGB", _JPEG_CHECK_SIZE)
        elif image_size is not None and image.format in JPEG_FORMATS:
            image.draft("RGB", (image_size, image_size))
        image.load()
    except Image.DecompressionBombError as error:
        raise UnusableImage(f"too large (possible decompression bomb): {describe_error(error)}") from None
    except Exception as error:  # Decoders raise OSError, SyntaxError, EOFError, ...
        raise UnusableImage(f"truncated or corrupt image: {describe_error(error)}") from None


def _count_frames(image: Image.Image) -> int:
    """Count the frames of an animation (1 for a still image).

    Raises:
        UnusableImage: If a later frame is damaged.
    """
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception as error:
        raise UnusableImage(f"truncated or corrupt image: {describe_error(error)}") from None


def _inspect_image(path_text: str, image: Image.Image, header: bytes, on_picture=None) -> ImageCheck:
    """Decode an opened image and describe it as a usable `ImageCheck`.

    Raises:
        UnusableImage: If the pixels cannot be decoded.
    """
    format_name, mode = image.format, image.mode
    width, height = image.size  # before decoding: JPEG preview decoding shrinks it
    _decode(image, preview=True)
    orientation = exif_orientation(image)
    if on_picture is not None:  # before counting frames, which may move to another frame
        on_picture(apply_orientation(to_rgb(image), orientation))
    frames = _count_frames(image)
    if orientation in ORIENTATIONS_SWAPPING_SIDES:
        width, height = height, width
    return ImageCheck(
        path=path_text,
        ok=True,
        reason=None,
        format=format_name,
        mode=mode,
        width=width,
        height=height,
        frames=frames,
        needs_conversion=needs_conversion(format_name, mode, orientation, header),
        exif_orientation=orientation,
    )


def _skipped_check(path_text: str, reason: str) -> ImageCheck:
    """Build the `ImageCheck` of a file that cannot be used."""
    return ImageCheck(
        path=path_text,
        ok=False,
        reason=reason,
        format=None,
        mode=None,
        width=None,
        height=None,
        frames=1,
        needs_conversion=False,
        exif_orientation=1,
    )


def _unusable_image_error(path_text: str, reason: str) -> InputError:
    """Build the one-line `InputError` for a file that cannot be used as an image."""
    return InputError(
        f"'{path_text}' cannot be used as an image ({reason}): expected a complete JPEG, PNG, "
        f"GIF, BMP, TIFF, WebP, HEIC or AVIF picture; replace it with a working copy or remove it from the folder"
    )
