"""Tests for tlcore.images: every input is generated in tmp_path, nothing is committed."""

import hashlib
import io
import os
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageOps

from tlcore.data import images
from tlcore.data.images import MAX_PIXELS_DEFAULT, check_image, convert_to_png, file_sha256, is_ignored_name, load_rgb
from tlcore.errors import InputError


def noisy_rgb(width, height):
    """Random pixels, so a JPEG cut in half loses real image data."""
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def save(image, path, **options):
    image.save(path, **options)
    return path


def png_with_declared_size(tmp_path, name, width, height):
    """A real 1x1 PNG whose IHDR claims another size, with a valid CRC; allocates nothing big."""
    path = save(Image.new("RGB", (1, 1)), tmp_path / name)
    data = bytearray(path.read_bytes())
    # Signature (8) + IHDR length (4) + b"IHDR" (4), then width, height at 16..24.
    data[16:24] = struct.pack(">II", width, height)
    ihdr_type_and_data = bytes(data[12:29])
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr_type_and_data))
    path.write_bytes(bytes(data))
    return path


def sixteen_bit_gradient(width=256, height=4):
    image = Image.new("I;16", (width, height))
    image.putdata([x * 257 for x in range(width)] * height)
    return image


# name, builder, expected format, expected mode, expected needs_conversion
NATIVE_AND_CONVERTED_CASES = [
    ("rgb.jpg", lambda: noisy_rgb(32, 24), {}, "JPEG", "RGB", False),
    ("gray.jpg", lambda: Image.new("L", (32, 24), 90), {}, "JPEG", "L", False),
    ("cmyk.jpg", lambda: Image.new("CMYK", (32, 24), (0, 255, 255, 0)), {}, "JPEG", "CMYK", True),
    ("rgb.png", lambda: Image.new("RGB", (32, 24), "red"), {}, "PNG", "RGB", False),
    ("rgba.png", lambda: Image.new("RGBA", (32, 24), (1, 2, 3, 100)), {}, "PNG", "RGBA", False),
    ("palette.png", lambda: Image.new("RGB", (32, 24), "blue").convert("P"), {}, "PNG", "P", False),
    ("palette_transparent.png", lambda: Image.new("P", (32, 24), 0), {"transparency": 0}, "PNG", "P", False),
    ("gray.png", lambda: Image.new("L", (32, 24), 7), {}, "PNG", "L", False),
    ("gray_alpha.png", lambda: Image.new("LA", (32, 24), (7, 200)), {}, "PNG", "LA", True),
    ("bilevel.png", lambda: Image.new("1", (32, 24), 1), {}, "PNG", "1", True),
    ("deep.png", lambda: sixteen_bit_gradient(32, 24), {}, "PNG", "I;16", True),
    ("picture.bmp", lambda: Image.new("RGB", (32, 24), "green"), {}, "BMP", "RGB", True),
    ("picture.tiff", lambda: Image.new("RGB", (32, 24), "green"), {}, "TIFF", "RGB", True),
    ("picture.webp", lambda: Image.new("RGB", (32, 24), "green"), {}, "WEBP", "RGB", True),
]


@pytest.mark.parametrize(
    "name, build, options, expected_format, expected_mode, expected_conversion",
    NATIVE_AND_CONVERTED_CASES,
    ids=[case[0] for case in NATIVE_AND_CONVERTED_CASES],
)
def test_check_image_recognises_formats_and_modes(
    tmp_path, name, build, options, expected_format, expected_mode, expected_conversion
):
    path = save(build(), tmp_path / name, **options)

    check = check_image(path)

    assert check.ok, check.reason
    assert check.reason is None
    assert check.format == expected_format
    # Older Pillow opens 16-bit PNGs as 'I', newer as 'I;16'.
    assert check.mode == expected_mode or (expected_mode == "I;16" and check.mode == "I")
    assert (check.width, check.height) == (32, 24)
    assert check.frames == 1
    assert check.needs_conversion is expected_conversion
    assert check.exif_orientation == 1
    assert check.path == str(path)


@pytest.mark.parametrize(
    "name",
    ["rgb.jpg", "cmyk.jpg", "palette_transparent.png", "gray_alpha.png", "bilevel.png", "picture.webp"],
)
def test_load_rgb_gives_8_bit_rgb_for_every_mode(tmp_path, name):
    case = next(case for case in NATIVE_AND_CONVERTED_CASES if case[0] == name)
    path = save(case[1](), tmp_path / name, **case[2])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Pillow's palette-transparency warning
        image = load_rgb(path)

    assert image.mode == "RGB"
    assert image.size == (32, 24)


def test_animated_gif_counts_frames_and_loads_the_first(tmp_path):
    frames = [Image.new("RGB", (20, 10), color) for color in ("red", "lime", "blue")]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)

    check = check_image(path)
    image = load_rgb(path)

    assert check.ok and check.format == "GIF"
    assert check.frames == 3
    assert check.needs_conversion is False
    assert image.getpixel((5, 5)) == (255, 0, 0)


def test_exif_orientation_6_swaps_sides_and_needs_conversion(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(noisy_rgb(40, 20), tmp_path / "rotated.jpg", exif=exif, quality=95)

    check = check_image(path)
    image = load_rgb(path)

    assert check.ok
    assert check.exif_orientation == 6
    assert (check.width, check.height) == (20, 40)
    assert check.needs_conversion is True
    assert image.size == (20, 40)
    with Image.open(path) as original:
        assert image.tobytes() == ImageOps.exif_transpose(original).convert("RGB").tobytes()


def test_png_with_exif_orientation_needs_conversion(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3
    path = save(Image.new("RGB", (8, 4), "red"), tmp_path / "turned.png", exif=exif)

    check = check_image(path)

    assert check.ok
    assert check.exif_orientation == 3
    assert check.needs_conversion is True


def test_png_named_jpg_is_recognised_by_content(tmp_path):
    path = save(Image.new("RGB", (8, 8), "red"), tmp_path / "actually_png.jpg", format="PNG")

    check = check_image(path)

    assert check.ok
    assert check.format == "PNG"
    assert check.needs_conversion is False


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.jpg", b"These are my holiday notes, not a photo.\n"),
        ("page.png", b"<!DOCTYPE html><html><body>404 Not Found</body></html>"),
    ],
)
def test_text_and_html_with_image_extension_are_skipped(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)

    check = check_image(path)

    assert not check.ok
    assert "not an image" in check.reason
    assert "text" in check.reason
    assert check.format is None


def test_unknown_binary_is_skipped_as_not_an_image(tmp_path):
    path = tmp_path / "blob.jpg"
    path.write_bytes(bytes(range(256)) * 4)

    assert check_image(path).reason == "not an image (unrecognised file format)"


def test_empty_file_is_skipped(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")

    check = check_image(path)

    assert not check.ok
    assert check.reason == "empty file (0 bytes)"


def test_truncated_jpeg_is_skipped(tmp_path):
    path = save(noisy_rgb(400, 300), tmp_path / "cut.jpg", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    check = check_image(path)

    assert not check.ok
    assert check.reason.startswith("truncated or corrupt image")
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_rgb(path)


def test_png_cut_inside_its_header_is_reported_as_damaged(tmp_path):
    path = save(Image.new("RGB", (8, 8)), tmp_path / "stub.png")
    path.write_bytes(path.read_bytes()[:20])

    check = check_image(path)

    assert not check.ok
    assert check.reason.startswith("truncated or corrupt image")


def test_declared_20000_square_png_is_skipped_as_decompression_bomb(tmp_path):
    path = png_with_declared_size(tmp_path, "bomb.png", 20000, 20000)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = check_image(path)

    assert not check.ok
    assert "400 megapixels" in check.reason
    assert "20000×20000" in check.reason
    assert "decompression bomb" in check.reason
    with pytest.raises(InputError, match="too large"):
        load_rgb(path)


def test_image_between_our_limit_and_pillows_is_skipped_with_its_size(tmp_path):
    path = png_with_declared_size(tmp_path, "big.png", 12000, 9000)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns above ~89 MP; it must stay silent
        check = check_image(path)

    assert not check.ok
    assert check.reason == (
        "too large: 12000×9000 = 108 megapixels, over the 100 megapixel limit (possible decompression bomb)"
    )


def test_max_pixels_argument_is_honoured(tmp_path):
    path = save(Image.new("RGB", (100, 100)), tmp_path / "small.png")

    assert check_image(path).ok
    assert not check_image(path, max_pixels=9_999).ok


@pytest.mark.parametrize("size", [(1, 1), (3, 500)])
def test_tiny_and_thin_images_are_accepted(tmp_path, size):
    path = save(Image.new("RGB", size, "white"), tmp_path / "tiny.png")

    check = check_image(path)

    assert check.ok
    assert (check.width, check.height) == size


def test_camera_sized_jpeg_is_accepted(tmp_path):
    path = save(Image.new("RGB", (6000, 4000), (30, 120, 200)), tmp_path / "camera.jpg", quality=80)

    check = check_image(path)

    assert 6000 * 4000 < MAX_PIXELS_DEFAULT
    assert check.ok, check.reason
    assert (check.width, check.height) == (6000, 4000)
    assert check.needs_conversion is False


def test_unicode_and_emoji_file_names_work(tmp_path):
    folder = tmp_path / "chats 猫"
    folder.mkdir()
    path = save(Image.new("RGB", (8, 8), "red"), folder / "café 😺.png")

    check = check_image(path)
    cached = convert_to_png(path, tmp_path / "cache")

    assert check.ok
    assert check.path == str(path)
    assert load_rgb(cached).size == (8, 8)


def test_directory_is_skipped(tmp_path):
    check = check_image(tmp_path)

    assert not check.ok
    assert "folder" in check.reason


def test_missing_file_is_skipped(tmp_path):
    assert check_image(tmp_path / "nowhere.jpg").reason == "file not found"


def test_permission_denied_is_skipped(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (8, 8)), tmp_path / "locked.png")

    def refuse(*arguments, **keywords):
        raise PermissionError(13, "Permission denied")

    # Running as root ignores chmod, so simulate the refusal where the module opens files.
    monkeypatch.setattr(images, "open", refuse, raising=False)

    check = check_image(path)

    assert not check.ok
    assert check.reason == "unreadable: permission denied"


def test_load_rgb_scales_16_bit_gradient_instead_of_clipping(tmp_path):
    path = save(sixteen_bit_gradient(), tmp_path / "gradient16.png")

    image = load_rgb(path)

    assert image.mode == "RGB"
    assert image.getextrema() == ((0, 255), (0, 255), (0, 255))
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((128, 0)) == (128, 128, 128)
    assert image.getpixel((255, 0)) == (255, 255, 255)


def test_load_rgb_16_bit_tiff_is_scaled_too(tmp_path):
    path = save(sixteen_bit_gradient(), tmp_path / "gradient16.tiff")

    image = load_rgb(path)

    assert image.getpixel((64, 1)) == (64, 64, 64)


def test_load_rgb_drops_alpha_like_tensorflow(tmp_path):
    path = save(Image.new("RGBA", (4, 4), (10, 20, 30, 0)), tmp_path / "clear.png")

    assert load_rgb(path).getpixel((0, 0)) == (10, 20, 30)


def test_load_rgb_raises_plain_input_error_for_non_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")

    with pytest.raises(InputError) as raised:
        load_rgb(path)

    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "notes.jpg" in message and "not an image" in message
    assert "\n" not in message


def test_convert_to_png_writes_rgb_png_named_by_content_and_is_idempotent(tmp_path, monkeypatch):
    source = save(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), tmp_path / "print.jpg")
    cache_dir = tmp_path / "cache"

    first = convert_to_png(source, cache_dir)

    assert first == cache_dir / f"{hashlib.sha256(source.read_bytes()).hexdigest()}.png"
    with Image.open(first) as converted:
        assert converted.format == "PNG"
        assert converted.mode == "RGB"
        assert converted.size == (16, 12)
    assert sorted(path.name for path in cache_dir.iterdir()) == [first.name]  # no temp files left

    def must_not_decode_again(*arguments, **keywords):
        raise AssertionError("the cached PNG should have been reused")

    monkeypatch.setattr(images, "load_rgb", must_not_decode_again)
    assert convert_to_png(source, cache_dir) == first


def test_convert_to_png_rejects_bad_source_and_writes_nothing(tmp_path):
    source = tmp_path / "bad.png"
    source.write_text("<html></html>")
    cache_dir = tmp_path / "cache"

    with pytest.raises(InputError):
        convert_to_png(source, cache_dir)
    with pytest.raises(InputError, match="not found"):
        convert_to_png(tmp_path / "missing.png", cache_dir)

    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "data.bin"
    content = os.urandom(3 * 1024 * 1024 + 17)  # spans several 1 MiB chunks
    path.write_bytes(content)

    assert file_sha256(path) == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    "name",
    [".DS_Store", "._photo.jpg", ".hidden", ".ipynb_checkpoints", "__MACOSX", "__pycache__",
     "Thumbs.db", "thumbs.DB", "desktop.ini", "Desktop.INI"],
)
def test_is_ignored_name_true_for_system_entries(name):
    assert is_ignored_name(name)


@pytest.mark.parametrize("name", ["cat.jpg", "cats", "Thumbs.db.jpg", "my.photo.png", "_underscore"])
def test_is_ignored_name_false_for_user_entries(name):
    assert not is_ignored_name(name)


def test_image_check_is_frozen(tmp_path):
    check = check_image(save(Image.new("RGB", (2, 2)), tmp_path / "a.png"))

    with pytest.raises(AttributeError):
        check.ok = False


def test_thumbnails_of_files_and_bytes_and_of_what_has_none(tmp_path):
    photo = save(noisy_rgb(300, 200), tmp_path / "photo.jpg")
    sliver = save(Image.new("RGB", (60000, 1), "red"), tmp_path / "sliver.png")
    bomb = png_with_declared_size(tmp_path, "bomb.png", 20000, 20000)

    for source in (photo, photo.read_bytes()):
        small = Image.open(io.BytesIO(images.thumbnail_jpeg(source, 120)))
        assert max(small.size) == 120 and small.format == "JPEG"
    assert images.thumbnail_jpeg(sliver) is None, "too thin to show, not a crash"
    assert images.thumbnail_jpeg(bomb.read_bytes()) is None, "a decompression bomb is refused, not decoded"
    assert images.thumbnail_jpeg(b"not a picture") is None


def _png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("width, height", [(60000, 1), (1, 60000), (40, 30)])
def test_a_pictures_size_from_its_bytes_or_its_file_and_no_thumbnail_for_a_sliver(width, height, tmp_path):
    data = _png_bytes(width, height)
    (tmp_path / "picture.png").write_bytes(data)

    assert images.picture_size(data) == images.picture_size(tmp_path / "picture.png") == (width, height)
    assert (images.thumbnail_jpeg(data, 440) is None) == (min(width, height) == 1)


def test_no_size_for_what_is_no_picture():
    assert images.picture_size(b"this is no picture") is None
    assert images.picture_size(b"") is None
