"""Phone photos as people bring them: large JPEGs turned by their EXIF orientation, HEIC (iPhones), AVIF.

Each photo shows a red top half over a blue bottom half when it is upright.
It is stored sideways, with the orientation the camera wrote (EXIF 6 for the
JPEG; HEIC keeps its own rotation, which pillow-heif writes from EXIF 6), and
must come out upright in the audit, in what training sees, and in Predict.
"""

import io
import pathlib

import numpy as np
import pytest
from PIL import Image

from tlcore.data.audit import audit_dataset
from tlcore.data.images import check_image, convert_to_png
from tlcore.results.prediction import predict_bytes, predict_files, prepare_images
from tlcore.training import pipeline

SIZE = 32
RED, BLUE = (220, 30, 30), (30, 30, 220)


def _upright(width: int, height: int) -> Image.Image:
    """Red above, blue below: the photo as the camera's viewer shows it."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2] = RED
    pixels[height // 2 :] = BLUE
    return Image.fromarray(pixels)


def _save_sideways(path: pathlib.Path, width: int, height: int, **options) -> pathlib.Path:
    """Save the upright picture turned a quarter, with EXIF orientation 6 ("turn 90 degrees clockwise to show")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    _upright(width, height).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes(), **options)
    return path


def _is_upright(pixels: np.ndarray) -> bool:
    """Red at the top and blue at the bottom (rows a quarter from each edge, where no resize blends them)."""
    height = pixels.shape[0]
    top, bottom = pixels[height // 4].mean(axis=0), pixels[3 * height // 4].mean(axis=0)
    return bool(np.abs(top - RED).max() < 40 and np.abs(bottom - BLUE).max() < 40)


@pytest.fixture(scope="module")
def phone_folder(tmp_path_factory, image_writer) -> pathlib.Path:
    """Two classes of tiny web pictures, the phone photos among the first class's."""
    root = image_writer(tmp_path_factory.mktemp("phone") / "data", {"circles": 4, "squares": 4})
    _save_sideways(root / "circles" / "phone.jpg", 1200, 1600, quality=90)  # 1600x1200 stored, as phones write them
    _save_sideways(root / "circles" / "iphone.heic", 480, 640, quality=90)
    _upright(300, 400).save(root / "squares" / "picture.avif", quality=90)
    return root


PHONE_PHOTOS = ("circles/phone.jpg", "circles/iphone.heic", "squares/picture.avif")


def test_the_audit_takes_the_photos_upright(phone_folder):
    records = {record.relative: record for record in audit_dataset(phone_folder).records}

    assert (records["circles/phone.jpg"].width, records["circles/phone.jpg"].height) == (1200, 1600)
    assert (records["circles/iphone.heic"].width, records["circles/iphone.heic"].height) == (480, 640)
    assert records["circles/iphone.heic"].format == "HEIF" and records["squares/picture.avif"].format == "AVIF"
    assert all(records[name].needs_conversion for name in PHONE_PHOTOS)  # TensorFlow reads none of them as shown


def test_training_sees_the_photos_upright(phone_folder):
    audit = audit_dataset(phone_folder)
    records = [record for record in audit.records if record.relative in PHONE_PHOTOS]

    seen = pipeline.load_images(pipeline.decodable_paths(records, SIZE), SIZE)

    assert [_is_upright(pixels) for pixels in seen] == [True] * len(records)


def test_a_turned_phone_jpeg_is_converted_at_the_reduced_scale_training_decodes_it_at(phone_folder, tmp_path):
    converted = convert_to_png(phone_folder / "circles" / "phone.jpg", tmp_path, image_size=SIZE)

    with Image.open(converted) as picture:
        assert picture.size == (150, 200)  # 1/8 of 1200x1600: a small PNG, not a 12-megapixel one
    assert converted.name.endswith("-1of8.png")
    assert convert_to_png(phone_folder / "circles" / "phone.jpg", tmp_path).name.count("-") == 0  # in full: another file


def test_predict_sees_uploads_and_files_upright(phone_folder):
    files = [phone_folder / name for name in PHONE_PHOTOS]

    prepared = prepare_images(files, SIZE)

    assert [_is_upright(pixels) for pixels in prepared] == [True] * len(files)


def test_a_damaged_heic_says_what_it_is(tmp_path):
    whole = io.BytesIO()
    _upright(64, 48).save(whole, format="HEIF")
    (tmp_path / "cut.heic").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])

    check = check_image(tmp_path / "cut.heic")

    assert not check.ok and "truncated or corrupt" in check.reason


@pytest.mark.slow
def test_a_run_trains_on_the_photos_and_predicts_an_uploaded_heic(phone_folder, tiny_config, tmp_path):
    from tlcore.results.prediction import load_run_model
    from tlcore.training.run import train

    result = train(tiny_config(phone_folder, epochs=1), runs_dir=tmp_path / "runs")
    model, labels = load_run_model(result.run_dir)
    top = predict_bytes(model, labels, (phone_folder / "circles" / "iphone.heic").read_bytes(), top_k=2)

    assert result.status == "completed"
    assert {name for name, _ in top} == {"circles", "squares"}
    assert [prediction.file for prediction in predict_files(result.run_dir, [phone_folder / "squares" / "picture.avif"])] \
        == [str(phone_folder / "squares" / "picture.avif")]
