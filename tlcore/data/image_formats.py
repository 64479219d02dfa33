"""What a file's first bytes and its decoded mode say: its real format, whether TensorFlow can decode it, why it is unusable.

Pure functions on headers and Pillow images, used by `tlcore.data.images`.
"""

from __future__ import annotations

import re

# MPO is what Pillow calls the multi-picture JPEGs many cameras and phones
# write; TensorFlow decodes them as ordinary JPEGs (the first picture).
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})


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


def _needs_conversion(format_name: str | None, mode: str, orientation: int, header: bytes) -> bool:
    """Tell whether TensorFlow's decoder would disagree with `load_rgb` on this file.

    `tf.io.decode_image(channels=3, expand_animations=False)` reads JPEG, PNG,
    GIF and BMP, ignores EXIF orientation, and mishandles CMYK JPEGs and
    16-bit PNGs for our purpose. Only the combinations known to agree are
    decoded natively; everything else is converted, which is always correct,
    only slower.
    """
    if format_name == "GIF":
        return False
    if orientation != 1:
        return True
    if format_name in _JPEG_FORMATS:
        return mode not in _NATIVE_JPEG_MODES
    if format_name == "PNG":
        return mode not in _NATIVE_PNG_MODES or _png_bit_depth(header) > 8
    return True


def _png_bit_depth(header: bytes) -> int:
    """Read the bit depth from a PNG's IHDR chunk (16 for 48-bit RGB, which Pillow opens as 'RGB')."""
    if header.startswith(_PNG_SIGNATURE) and header[12:16] == b"IHDR" and len(header) > 24:
        return header[24]
    return 16  # Unreadable header: assume the unusual case, which is converted safely.


def _describe_non_image(header: bytes) -> str:
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
        return "unsupported image format: HEIC/HEIF (iPhone photo); export it as JPEG"
    if brand in _AVIF_BRANDS:
        return "unsupported image format: AVIF; export it as JPEG or PNG"
    return "not an image (looks like a video)"


def _looks_like_text(header: bytes) -> bool:
    """Guess whether bytes are text: no NUL and no control characters but whitespace."""
    return all(byte >= 0x20 or byte in b"\t\n\r\x0c" for byte in header)


def _too_large_reason(width: int, height: int, max_pixels: int) -> str:
    """Explain a size refusal in megapixels, the unit cameras use."""
    return (
        f"too large: {width}×{height} = {_megapixels(width * height)} megapixels, "
        f"over the {_megapixels(max_pixels)} megapixel limit (possible decompression bomb)"
    )


def _pillow_bomb_reason(error: Exception, header: bytes, max_pixels: int) -> str:
    """Explain a refusal by Pillow's own hard limit, which fires before we see the size.

    The size is recovered from a PNG header, else from the pixel count in
    Pillow's message, so the user still learns how large the file claims to be.
    """
    png_size = _png_declared_size(header)
    if png_size is not None:
        return _too_large_reason(*png_size, max_pixels)
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


def _describe_error(error: BaseException) -> str:
    """Give an exception's message, or its type name when the message is empty."""
    return str(error) or type(error).__name__
