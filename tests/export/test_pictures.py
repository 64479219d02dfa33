"""tlcore.export.pictures prepares every kind of picture pixel for pixel as the app does.

The app's way is `tlcore.results.prediction.prepare_images` (TensorFlow's
decoders, or Pillow through a PNG for what TensorFlow reads differently, then
TensorFlow's area or bilinear resize); the snippets' way is NumPy and Pillow
only. Equal means equal: every pixel of every picture, at two sizes, large
photos decoded at a reduced JPEG scale and HEIC photos included.
"""

import numpy as np
import pytest
from PIL import Image

from tlcore.data import image_formats
from tlcore.export.pictures import jpeg_reduction, load_picture, prepare_picture, resize_like_tlcore
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
    # Phone photos: decoded at 1/4 or 1/8 of their size (at 224 and 32 px), one of them EXIF-turned and progressive.
    "large.jpg": (lambda: _smooth(1600, 1200), {"quality": 90}),
    "large_turned_6.jpg": (lambda: _smooth(1601, 1203, seed=4), {"exif": _with_orientation(6), "progressive": True}),
    "large_cmyk.jpg": (lambda: _smooth(900, 700, seed=5).convert("CMYK"), {}),
    "phone.heic": (lambda: _smooth(640, 480, seed=6), {"exif": _with_orientation(6), "quality": 90}),
    "picture.avif": (lambda: _smooth(300, 200, seed=7), {"quality": 90}),
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


@pytest.mark.parametrize("name, size", [("photo.jpg", None), ("photo.jpg", 224), ("photo.jpg", 32), ("large.jpg", 224),
                                        ("large.jpg", 100), ("wide.jpg", 32), ("gray.jpg", 32)])
def test_jpegs_are_decoded_as_pillow_decodes_them(picture_files, name, size):
    # TensorFlow's default (fast) JPEG transform differs from Pillow's by several levels; its reduced
    # scales (decode_jpeg's ratio) must give what Pillow's draft gives, pixel for pixel.
    import tensorflow as tf

    raw = tf.io.read_file(str(picture_files[name]))

    np.testing.assert_array_equal(pipeline.decode_rgb(raw, size).numpy(), load_picture(picture_files[name], size))


def test_a_large_photo_is_decoded_at_the_largest_scale_that_covers_the_model(picture_files):
    assert load_picture(picture_files["large.jpg"]).shape == (1200, 1600, 3)
    assert load_picture(picture_files["large.jpg"], 224).shape == (300, 400, 3)  # 1/4: 1/8 would be 150 px high
    assert load_picture(picture_files["large.jpg"], 100).shape == (150, 200, 3)
    assert load_picture(picture_files["large_turned_6.jpg"], 224).shape == (401, 301, 3)  # 1/4, rounded up, upright
    assert load_picture(picture_files["photo.jpg"], 224).shape == (240, 320, 3)  # 480 px high is twice 224: 1/2
    assert load_picture(picture_files["turned_3.jpg"], 224).shape == (300, 400, 3)  # not twice 224 high: in full
    assert load_picture(picture_files["exact.png"], 32).shape == (224, 224, 3)  # only JPEGs have reduced scales


def test_the_exports_copy_of_the_scale_rule_is_the_apps():
    sides = [1, 31, 32, 63, 64, 100, 127, 128, 255, 256, 448, 449, 895, 896, 1792, 4000]
    for width in sides:
        for height in sides:
            for size in (32, 224):
                assert jpeg_reduction(width, height, size) == image_formats.jpeg_reduction(width, height, size)
    assert [jpeg_reduction(side, 3000, 224) for side in (447, 448, 896, 1792, 4000)] == [1, 2, 4, 8, 8]


def test_a_heic_photo_is_read_upright(picture_files):
    # pillow-heif turns the photo by the file's own rotation; its EXIF orientation then reads 1 (no second turn).
    assert load_picture(picture_files["phone.heic"]).shape == (640, 480, 3)


@pytest.mark.parametrize("height, width, size", [(375, 500, 224), (213, 320, 224), (240, 179, 224), (224, 224, 224),
                                                 (31, 7, 32), (1000, 999, 96), (5, 801, 299), (64, 64, 32)])
def test_the_resize_is_tensorflows_to_the_last_bit(height, width, size):
    import tensorflow as tf

    pixels = np.asarray(_noisy(width, height, seed=height * width))
    method = "area" if max(height, width) > size else "bilinear"
    wanted = tf.clip_by_value(tf.round(tf.image.resize(pixels, [size, size], method=method)), 0, 255).numpy()

    np.testing.assert_array_equal(resize_like_tlcore(pixels, size), wanted)
