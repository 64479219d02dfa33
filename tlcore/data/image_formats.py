"""What a file's first bytes and its decoded mode say: its real format, whether TensorFlow can decode it, why it is unusable.

Pure functions on headers and Pillow images, used by `tlcore.data.images`.
"""

from __future__ import annotations

import re

import pillow_heif
from PIL import Image

# HEIC/HEIF photos (iPhones' default) open in Pillow like any other picture,
# turned upright by the file's own rotation (its EXIF orientation then reads 1).
# AVIF is Pillow's own since 11.2.
pillow_heif.register_heif_opener()

# MPO is what Pillow calls the multi-picture JPEGs many cameras and phones
# write; TensorFlow decodes them as ordinary JPEGs (the first picture).
JPEG_FORMATS = frozenset({"JPEG", "MPO"})

EXIF_ORIENTATION_TAG = 0x0112

ORIENTATIONS_SWAPPING_SIDES = frozenset({5, 6, 7, 8})

# The same table `PIL.ImageOps.exif_transpose` uses: EXIF orientation value to
# the transpose that makes the image look the way cameras and viewers show it.
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


_NATIVE_JPEG_MODES = frozenset({"RGB", "L"})


_NATIVE_PNG_MODES = frozenset({"RGB", "RGBA", "L", "P"})


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Leading bytes of image formats, to tell "a damaged photo" from "not a photo".
_IMAGE_SIGNATURES = (
    (_PNG_SIGNATURE, "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def jpeg_reduction(width: int, height: int, size: int) -> int:
    """The largest of libjpeg's reduced decoding scales (8, 4 or 2 for 1/8, 1/4, 1/2) that keeps both sides >= size; 1 if none.

    What Pillow's `Image.draft(mode, (size, size))` picks, and what
    `tlcore.training.pipeline.decode_rgb` decodes JPEGs at; the exports'
    standalone copy is `tlcore.export.pictures.jpeg_reduction` (kept equal by a test).
    """
    fits = min(width // size, height // size)
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def needs_conversion(format_name: str | None, mode: str, orientation: int, header: bytes) -> bool:
    """Tell whether TensorFlow's decoder would disagree with `load_rgb` on this file.

    `tf.io.decode_image(channels=3, expand_animations=False)` reads JPEG, PNG,
    GIF and BMP, ignores EXIF orientation, and mishandles CMYK JPEGs and
    16-bit PNGs for our purpose; HEIC and AVIF it cannot read at all. Only
    the combinations known to agree are decoded natively; everything else is
    converted, which is always correct, only slower.
    """
    if format_name == "GIF":
        return False
    if orientation != 1:
        return True
    if format_name in JPEG_FORMATS:
        return mode not in _NATIVE_JPEG_MODES
    if format_name == "PNG":
        return mode not in _NATIVE_PNG_MODES or _png_bit_depth(header) > 8
    return True


def _png_bit_depth(header: bytes) -> int:
    """Read the bit depth from a PNG's IHDR chunk (16 for 48-bit RGB, which Pillow opens as 'RGB')."""
    if header.startswith(_PNG_SIGNATURE) and header[12:16] == b"IHDR" and len(header) > 24:
        return header[24]
    return 16  # Unreadable header: assume the unusual case, which is converted safely.


def starts_like_image(header: bytes) -> bool:
    """True when a file's first bytes (16 are enough) are those of a picture format, readable here or not (HEIC, AVIF)."""
    if any(header.startswith(signature) for signature, _ in _IMAGE_SIGNATURES):
        return True
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return True
    if header[:2] == b"BM":
        return True
    return header[4:8] == b"ftyp" and header[8:12] in _HEIF_BRANDS | _AVIF_BRANDS


def describe_non_image(header: bytes) -> str:
    """Say, from a file's first bytes, what a file Pillow cannot open seems to be."""
    for signature, format_name in _IMAGE_SIGNATURES:
        if header.startswith(signature):
            return f"truncated or corrupt image: starts like a {format_name} but cannot be read"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "truncated or corrupt image: starts like a WEBP but cannot be read"
    if header[4:8] == b"ftyp":
        return _describe_iso_media(header[8:12])
    if header.startswith(b"%PDF"):
        return "not an image (looks like a PDF document)"
    if header.startswith(b"PK\x03\x04"):
        return "not an image (looks like a zip archive)"
    if _looks_like_text(header):
        return "not an image (looks like text/HTML)"
    return "not an image (unrecognised file format)"


def _describe_iso_media(brand: bytes) -> str:
    """Describe an ISO media file (HEIC photo, AVIF image, MP4 or MOV video)."""
    if brand in _HEIF_BRANDS:
        return "truncated or corrupt image: starts like a HEIC/HEIF photo but cannot be read"
    if brand in _AVIF_BRANDS:
        return "truncated or corrupt image: starts like an AVIF picture but cannot be read"
    return "not an image (looks like a video)"


def _looks_like_text(header: bytes) -> bool:
    """Guess whether bytes are text: no NUL and no control characters but whitespace."""
    return all(byte >= 0x20 or byte in b"\t\n\r\x0c" for byte in header)


def too_large_reason(width: int, height: int, max_pixels: int) -> str:
    """Explain a size refusal in megapixels, the unit cameras use."""
    return (
        f"too large: {width}×{height} = {_megapixels(width * height)} megapixels, "
        f"over the {_megapixels(max_pixels)} megapixel limit (possible decompression bomb)"
    )


def pillow_bomb_reason(error: Exception, header: bytes, max_pixels: int) -> str:
    """Explain a refusal by Pillow's own hard limit, which fires before we see the size.

    The size is recovered from a PNG header, else from the pixel count in
    Pillow's message, so the user still learns how large the file claims to be.
    """
    png_size = _png_declared_size(header)
    if png_size is not None:
        return too_large_reason(*png_size, max_pixels)
    match = re.search(r"\((\d+) pixels\)", str(error))
    claimed = f" {_megapixels(int(match.group(1)))} megapixels," if match else ""
    return (
        f"too large:{claimed} over the {_megapixels(max_pixels)} megapixel limit "
        f"(possible decompression bomb)"
    )


def _png_declared_size(header: bytes) -> tuple[int, int] | None:
    """Read width and height from a PNG's IHDR chunk, or None for other files."""
    if header.startswith(_PNG_SIGNATURE) and header[12:16] == b"IHDR" and len(header) >= 24:
        return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    return None


def _megapixels(pixel_count: int) -> str:
    """Format a pixel count in megapixels: '400', '24', '1.5'."""
    megapixels = pixel_count / 1_000_000
    return f"{megapixels:.0f}" if megapixels >= 10 or megapixels == int(megapixels) else f"{megapixels:.1f}"


def describe_error(error: BaseException) -> str:
    """Give an exception's message, or its type name when the message is empty."""
    return str(error) or type(error).__name__


def exif_orientation(image: Image.Image) -> int:
    """Read the EXIF orientation, treating missing, invalid or damaged EXIF as 1.

    Damaged EXIF is common in edited photos and must not cost the user an
    image; `exif_transpose` would ignore such values as well.
    """
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
        return value if value in ORIENTATION_TRANSPOSE else 1
    except Exception:
        return 1


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Turn an image upright according to its EXIF orientation."""
    transpose_method = ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(transpose_method) if transpose_method is not None else image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a loaded image of any mode to 8-bit RGB.

    Raises:
        UnusableImage: If Pillow has no conversion for the mode.
    """
    try:
        if image.mode.startswith("I") or image.mode == "F":
            image = scale_to_8_bit_gray(image)
        elif image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
            # Going through RGBA is Pillow's supported path for palette transparency.
            image = image.convert("RGBA")
        return image.convert("RGB")
    except Exception as error:
        raise UnusableImage(f"unsupported colour mode {image.mode!r}: {describe_error(error)}") from None


def scale_to_8_bit_gray(image: Image.Image) -> Image.Image:
    """Map a 16-bit, 32-bit or float grayscale image to 8-bit 'L' without clipping.

    16-bit data (0..65535) is divided by 257 so that 65535 becomes 255; float
    data in 0..1 is multiplied by 255; any other range is stretched from its
    own minimum and maximum to 0..255.
    """
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    low, high = image.getextrema()
    if image.mode == "I" and low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    else:
        scale = 255 / (high - low) if high > low else 1.0
        offset = -low * scale
    # Integer point transforms truncate; adding one half rounds to nearest.
    rounding = 0.5 if image.mode == "I" else 0.0
    return image.point(lambda value: value * scale + offset + rounding).convert("L")


class UnusableImage(Exception):
    """Internal: a file cannot be used; the message is the plain-language reason.

    `check_image` turns it into a skipped `ImageCheck`, `load_rgb` into an
    `InputError`, so both report the same reason for the same file.
    """
