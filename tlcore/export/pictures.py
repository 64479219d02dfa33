"""Prepare a picture for an exported model exactly as tlcore does, with NumPy and Pillow only.

An exported model takes square RGB pictures (0-255) of the run's size. What
decides whether it gives the app's answers outside the app is how a picture
becomes those numbers, so this module reproduces tlcore's preparation
pixel for pixel:

- decoding as `tlcore.data.images.load_rgb` does: the first frame, turned
  upright by its EXIF orientation, 8-bit RGB (16-bit pictures scaled, not
  clipped; alpha dropped, not blended); a JPEG at least twice the model's size
  is decoded at libjpeg's largest reduced scale (1/2, 1/4 or 1/8) that leaves
  both sides at least the model's size, as `tlcore.training.pipeline.decode_rgb`
  does (a 12-megapixel photo then decodes about ten times faster); HEIC/HEIF
  photos are read with the pillow-heif plugin when it is installed;
- resizing as `tlcore.training.pipeline.decode_and_resize` does: TensorFlow's
  area averaging when the picture is larger than the model's size, its
  bilinear interpolation (half-pixel centres) otherwise, computed in float32
  in TensorFlow's order of operations, then rounded to whole levels.

It imports nothing from tlcore: the snippets `tlcore.export.snippets` writes
contain this module as it stands, so that what the parity check measures is
what a user's copy of a snippet does. The resize is
not inside the exported model because neither TensorFlow Lite nor ONNX has an
area-averaging resize, and a plain bilinear one would see other pixels than
the model was trained on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

try:  # HEIC/HEIF photos (iPhones' default); the snippets run without it for other pictures
    import pillow_heif
    pillow_heif.register_heif_opener()
except ImportError:
    pass

# EXIF orientation -> the transpose that turns the picture upright (as PIL.ImageOps.exif_transpose).
ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def jpeg_reduction(width: int, height: int, size: int) -> int:
    """The largest of libjpeg's reduced decoding scales (8, 4 or 2 for 1/8, 1/4, 1/2) that keeps both sides >= size; 1 if none.

    Pillow's `Image.draft(mode, (size, size))` picks exactly this scale.
    """
    fits = min(width // size, height // size)
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def load_picture(path, size: int | None = None) -> np.ndarray:
    """Decode a picture file as tlcore does: upright, 8-bit RGB, shape (height, width, 3), uint8.

    With `size` (the model's input size), a JPEG is decoded at the reduced scale `jpeg_reduction` gives.
    """
    with Image.open(path) as image:
        if size is not None and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (size, size))  # the scale of jpeg_reduction(*image.size, size)
        image.load()
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:  # damaged EXIF counts as none
            orientation = 1
        if image.mode.startswith("I") or image.mode == "F":
            image = _gray_to_8_bit(image)
        elif image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
        image = image.convert("RGB")
    if orientation in ORIENTATIONS:
        image = image.transpose(ORIENTATIONS[orientation])
    return np.asarray(image)


def _gray_to_8_bit(image):
    """16-bit gray / 257, float 0..1 x 255, any other range stretched to 0..255 (rounded)."""
    image = image.convert("I") if image.mode.startswith("I;16") else image
    low, high = image.getextrema()
    if image.mode == "I" and low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    else:
        scale = 255 / (high - low) if high > low else 1.0
        offset = -low * scale
    rounding = 0.5 if image.mode == "I" else 0.0
    return image.point(lambda value: value * scale + offset + rounding).convert("L")


def _area_weights(in_size: int, out_size: int):
    """Source indices, float32 weights (output, k) and the scale of TensorFlow's area resize on one axis."""
    scale = np.float32(in_size) / np.float32(out_size)
    outputs = np.arange(out_size)
    low = outputs.astype(np.float32) * scale
    high = (outputs + 1).astype(np.float32) * scale
    start, end = np.floor(low).astype(np.int64), np.ceil(high).astype(np.int64)
    index = start[:, None] + np.arange(int((end - start).max()))[None, :]
    source, low, high = index.astype(np.float32), low[:, None], high[:, None]
    weight = np.where(source < low, np.where(source + 1 > high, scale, source + np.float32(1) - low),
                      np.where(source + 1 > high, high - source, np.float32(1)))
    weight = np.where(index < end[:, None], weight, np.float32(0)).astype(np.float32)
    return np.clip(index, 0, in_size - 1), weight, scale


def _resize_area(pixels: np.ndarray, size: int) -> np.ndarray:
    """Each output pixel the average of the input area it covers (sums in TensorFlow's order)."""
    columns, column_weights, column_scale = _area_weights(pixels.shape[1], size)
    rows, row_weights, row_scale = _area_weights(pixels.shape[0], size)
    values = pixels.astype(np.float32)
    across = values[:, columns[:, 0]] * column_weights[None, :, 0, None]
    for k in range(1, columns.shape[1]):
        across = across + values[:, columns[:, k]] * column_weights[None, :, k, None]
    total = across[rows[:, 0]] * row_weights[:, 0, None, None]
    for k in range(1, rows.shape[1]):
        total = total + across[rows[:, k]] * row_weights[:, k, None, None]
    return total * np.float32(1.0 / float(np.float32(row_scale * column_scale)))


def _bilinear_weights(in_size: int, out_size: int):
    scale = np.float32(in_size) / np.float32(out_size)
    position = (np.arange(out_size).astype(np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    below = np.floor(position)
    lower = np.maximum(below.astype(np.int64), 0)
    upper = np.minimum(np.ceil(position).astype(np.int64), in_size - 1)
    return lower, upper, (position - below).astype(np.float32)


def _resize_bilinear(pixels: np.ndarray, size: int) -> np.ndarray:
    """Bilinear interpolation with half-pixel centres, as tf.image.resize(method="bilinear")."""
    if pixels.shape[:2] == (size, size):
        return pixels.astype(np.float32)
    left, right, across = _bilinear_weights(pixels.shape[1], size)
    top, bottom, down = _bilinear_weights(pixels.shape[0], size)
    values = pixels.astype(np.float32)
    across = across[None, :, None]
    upper = values[top][:, left] + (values[top][:, right] - values[top][:, left]) * across
    lower = values[bottom][:, left] + (values[bottom][:, right] - values[bottom][:, left]) * across
    return upper + (lower - upper) * down[:, None, None]


def resize_like_tlcore(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize (height, width, 3) uint8 pixels to (size, size, 3) float32 whole levels 0-255, as tlcore does."""
    shrinking = max(pixels.shape[:2]) > size
    resized = _resize_area(pixels, size) if shrinking else _resize_bilinear(pixels, size)
    return np.clip(np.round(resized), 0, 255).astype(np.float32)


def prepare_picture(path, size: int) -> np.ndarray:
    """A picture file as the model's input: (size, size, 3) float32, 0-255, prepared as in the app."""
    return resize_like_tlcore(load_picture(path, size), size)

