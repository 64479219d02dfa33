"""Every input of every page, driven with hostile values: no exception element, no hidden bug, ever.

The values are the ones the reliability attack used: very long text, NUL
bytes, path traversal, other systems' paths, shell and URL tricks, emoji;
files with hostile names (traversal, NUL, 300 characters, no name), and
hostile contents (empty, truncated, text posing as a picture, a picture that
claims to be 50,000 pixels wide, a zip that is not one). Each test asserts
that the page shows no exception element and logs no bug (`no_hidden_bugs`);
how each value is answered in words is the subject of the other page tests.
"""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app_pages import REPO, _picture_png, dataset, home, no_hidden_bugs, populated  # noqa: F401
from test_classroom_pages import accounts_file, classroom  # noqa: F401

import tlcore

TEXTS = [
    "",
    " ",
    "x" * 10_000,
    "a\x00b",
    "\x00",
    "../../../../etc/passwd",
    "..\\..\\Windows\\System32",
    "C:\\Users",
    "~/.ssh",
    "/dev/zero",
    "file:///etc/passwd",
    "$(rm -rf /); `reboot`",
    "%00%2e%2e%2f",
    "🌸" * 300,
    "\n\t\r",
    "' OR '1'='1",
]


def _run(page: str, **query) -> AppTest:
    app = AppTest.from_file(str(REPO / page), default_timeout=60)
    app.query_params.update(query)
    return app.run()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge picture (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    return buffer.getvalue()[:200]


HOSTILE_PICTURES = [
    ("empty.png", b""),
    ("truncated.jpg", _truncated_jpeg()),
    ("text.jpg", b"this is not a picture at all"),
    ("bomb.png", _png_claiming(50_000, 50_000)),
    ("zip-in-disguise.png", b"PK\x03\x04" + b"\x00" * 100),
]

HOSTILE_NAMES = ["../../../etc/evil.png", "/absolute/evil.png", "a\x00b.png", "x" * 300 + ".png", ".png", "🌸/🌸.png",
                 "C:\\evil\\evil.png", "pets/../../evil.png"]


@pytest.mark.parametrize("typed", TEXTS, ids=[f"text{index}" for index in range(len(TEXTS))])
def test_the_typed_server_folder_takes_any_text(typed, dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(dataset))
    app = _run("pages/data.py")
    app.text_input(key="data_server_path").set_value(typed).run()
    app.button(key="data_use_server_path").click().run()

    assert not app.exception, app.exception


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"name{index}" for index in range(len(HOSTILE_NAMES))])
def test_a_folder_upload_with_a_hostile_file_name_never_breaks_the_page(name):
    app = _run("pages/data.py")
    files = [(f"pets/{label}/{index}.png", _picture_png(10 * seed + index), "image/png")
             for seed, label in enumerate(("cats", "dogs")) for index in range(3)]
    files.append((name, _picture_png(99), "image/png"))

    app.file_uploader(key="data_folder_upload").set_value(files).run()
    app.button(key="data_use_folder_upload").click().run()

    assert not app.exception, app.exception


def test_a_folder_upload_of_hostile_pictures_never_breaks_the_page():
    app = _run("pages/data.py")
    files = [(f"pets/cats/{name}", data, "image/png") for name, data in HOSTILE_PICTURES]
    files += [(f"pets/dogs/{name}", data, "image/png") for name, data in HOSTILE_PICTURES]

    app.file_uploader(key="data_folder_upload").set_value(files).run()
    app.button(key="data_use_folder_upload").click().run()

    assert not app.exception, app.exception
    assert app.error or app.warning, "a folder with no usable picture says so"


@pytest.mark.parametrize("name, data", [("empty.zip", b""), ("text.zip", b"not a zip"),
                                         ("truncated.zip", b"PK\x03\x04" + b"\x00" * 30), ("x" * 300 + ".zip", b"PK")],
                         ids=["empty", "text", "truncated", "long-name"])
def test_a_zip_upload_that_is_no_zip_never_breaks_the_page(name, data):
    app = _run("pages/data.py")
    app.file_uploader(key="data_zip_upload").set_value((name, data, "application/zip")).run()
    for button in app.button:
        if button.key and button.key.startswith("data_use_zip"):
            button.click().run()

    assert not app.exception, app.exception


# Not a name with a NUL byte: no browser can send one (no file system allows it), and Streamlit's
# own upload manager refuses it before the page runs ("Filename cannot contain null bytes").
PREDICT_UPLOADS = HOSTILE_PICTURES + [(name, _picture_png(1)) for name in HOSTILE_NAMES if "\x00" not in name]


@pytest.mark.parametrize("name, data", PREDICT_UPLOADS, ids=[f"upload{index}" for index in range(len(PREDICT_UPLOADS))])
def test_predict_takes_any_upload(name, data, populated, monkeypatch):
    """The upload goes through the real decoding (`explain_bytes` with a stand-in model); only Grad-CAM is skipped."""
    class StandIn:
        input_shape = (None, 32, 32, 3)

    labels = ["circle", "square", "star", "triangle"]
    monkeypatch.setattr(tlcore.results.prediction, "load_run_model", lambda run_dir: (StandIn(), labels))
    monkeypatch.setattr(tlcore.results.explain, "explain_arrays", lambda model, labels, batch, pictures, names: [
        tlcore.Explanation(names[0], "star", 0.9, "star", (("star", 0.9), ("circle", 0.1)), np.ones((2, 2)), "out_relu",
                           _picture_png(3))])
    monkeypatch.setattr(tlcore.results.explain, "with_doubts", lambda run_dir, model, labels, made: made)
    app = _run("pages/predict.py")
    app.file_uploader(key="predict_upload").set_value((name, data, "image/png")).run()

    assert not app.exception, app.exception


@pytest.mark.parametrize("data", [b"", b"HDF", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100], ids=["empty", "short", "header-only"])
def test_the_weights_import_takes_any_file(data, monkeypatch):
    app = _run("pages/model.py")
    app.selectbox(key="model_backbone").set_value("resnet50").run()
    app.file_uploader(key="model_weights_upload").set_value(
        ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", data, "application/octet-stream")).run()
    app.button(key="model_import_weights").click().run()

    assert not app.exception, app.exception
    assert app.error, "a broken weights file is refused in words"


@pytest.mark.parametrize("text", TEXTS[2:8], ids=[f"text{index}" for index in range(2, 8)])
def test_sign_in_takes_any_name_and_password(text, classroom):
    app = _run("app.py")
    app.text_input(key="signin_name").input(text[:64])
    app.text_input(key="signin_password").input(text[:1024])
    app.button(key="signin_submit").click().run()

    assert not app.exception, app.exception


@pytest.mark.parametrize("page", ["app.py", "pages/data.py", "pages/model.py", "pages/train.py", "pages/evaluate.py",
                                  "pages/predict.py", "pages/export.py"])
@pytest.mark.parametrize("value", ["../../etc", "a\x00b", "%2e%2e", "🌸" * 50, ""], ids=["up", "nul", "escaped", "emoji", "empty"])
def test_any_address_bar_value_on_any_page(page, value, populated):
    app = _run(page, run=value, user=value)

    assert not app.exception, app.exception
