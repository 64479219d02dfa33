"""tlcore.export.pictures prepares every kind of picture pixel for pixel as the app does.

The app's way is `tlcore.results.prediction.prepare_images` (TensorFlow's
decoders, or Pillow through a PNG for what TensorFlow reads differently, then
TensorFlow's area or bilinear resize); the snippets' way is NumPy and Pillow
only. Equal means equal: every pixel of every picture, at two sizes.
"""

import numpy as np
import pytest
from PIL import Image

from tlcore.export.pictures import load_picture, prepare_picture, resize_like_tlcore
from tlcore.results.prediction import prepare_images
from tlcore.training import pipeline


def _smooth(width=640, height=480, seed=1) -> Image.Image:
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def _noisy(width, height, seed=2) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _sixteen_bit() -> Image.Image:
    return Image.fromarray((np.arange(300 * 200).reshape(200, 300) * 7 % 65536).astype(np.uint16))


# name: (picture, save options); a photo, every mode the audit accepts, small, exact, thin and EXIF-rotated pictures.
PICTURES = {
    "photo.jpg": (lambda: _smooth(), {"quality": 90}),
    "small.jpg": (lambda: _noisy(50, 30), {}),
    "wide.jpg": (lambda: _noisy(900, 120), {}),
    "gray.jpg": (lambda: _smooth().convert("L"), {}),
    "cmyk.jpg": (lambda: _smooth().convert("CMYK"), {}),
    "exact.png": (lambda: _noisy(224, 224), {}),
    "tall.png": (lambda: _noisy(100, 700), {}),
    "rgba.png": (lambda: _smooth().convert("RGBA"), {}),
    "palette.png": (lambda: _smooth().convert("P"), {}),
    "palette_transparent.png": (lambda: _smooth().convert("P"), {"transparency": 3}),
    "gray_alpha.png": (lambda: _smooth().convert("LA"), {}),
    "deep.png": (_sixteen_bit, {}),
    "picture.gif": (lambda: _smooth().convert("P"), {}),
    "picture.bmp": (lambda: _smooth(300, 200), {}),
    "picture.tiff": (lambda: _smooth(300, 200), {}),
    "picture.webp": (lambda: _smooth(300, 200), {}),
    **{f"turned_{o}.jpg": (lambda: _smooth(400, 300), {"exif": _with_orientation(o)}) for o in (3, 6, 8)},
    "turned_5.png": (lambda: _smooth(400, 300), {"exif": _with_orientation(5)}),
}


@pytest.fixture(scope="module")
def picture_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    files = {}
    for name, (make, options) in PICTURES.items():
        make().save(folder / name, **options)
        files[name] = folder / name
    return files


@pytest.mark.parametrize("size", [224, 32])
def test_every_picture_is_prepared_exactly_as_the_app_prepares_it(picture_files, size):
    names = list(picture_files)
    expected = prepare_images([picture_files[name] for name in names], size)

    different = {name: int((prepare_picture(picture_files[name], size) != wanted).sum())
                 for name, wanted in zip(names, expected, strict=True)}

    assert not {name: count for name, count in different.items() if count}, "pixels that differ, per picture"


def test_an_exif_turned_photo_comes_out_upright(picture_files):
    assert load_picture(picture_files["turned_6.jpg"]).shape == (400, 300, 3)
    assert load_picture(picture_files["photo.jpg"]).dtype == np.uint8


def test_jpegs_are_decoded_as_pillow_decodes_them(picture_files):
    # TensorFlow's default (fast) JPEG transform differs from Pillow's by several levels.
    import tensorflow as tf

    raw = tf.io.read_file(str(picture_files["photo.jpg"]))

    np.testing.assert_array_equal(pipeline.decode_rgb(raw).numpy(), load_picture(picture_files["photo.jpg"]))


@pytest.mark.parametrize("height, width, size", [(375, 500, 224), (213, 320, 224), (240, 179, 224), (224, 224, 224),
                                                 (31, 7, 32), (1000, 999, 96), (5, 801, 299), (64, 64, 32)])
def test_the_resize_is_tensorflows_to_the_last_bit(height, width, size):
    import tensorflow as tf

    pixels = np.asarray(_noisy(width, height, seed=height * width))
    method = "area" if max(height, width) > size else "bilinear"
    wanted = tf.clip_by_value(tf.round(tf.image.resize(pixels, [size, size], method=method)), 0, 255).numpy()

    np.testing.assert_array_equal(resize_like_tlcore(pixels, size), wanted)
