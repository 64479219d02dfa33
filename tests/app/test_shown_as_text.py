"""Names as text on the pages, and Predict showing every picture it can (the third attack, items 7, 10 and 11).

Class folders named `**bold** [link](…)`, `<img src=x onerror=…>` and one with
a line break and a right-to-left override: every element the Data and Evaluate
pages write must show them as the text they are. Each element's Markdown is
rendered here as a Markdown reader would, and must hold no link, image, HTML
or emphasis the names brought in. On Predict, a 60000×1 and a 1×60000 picture
among others get a line each, and the others their answers.
"""

import html
import io
import json
import time

import numpy as np
import pytest
from conftest import write_class_folders
from markdown_it import MarkdownIt
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app_pages import REPO, _picture_png, dataset, home, no_hidden_bugs, populated  # noqa: F401

import tlcore
import tlcore.data.images
import tlcore.results.explain
import tlcore.results.prediction
from tlcore.results.evaluation import classification_report
from tlcore.text import HIDDEN_CHARACTERS, terminal_text

BOLD_LINK = "**bold** [link](javascript:alert(1))"
IMAGE_TAG = "<img src=x onerror=alert(1)>"
LINE_BREAK_AND_OVERRIDE = "new\nline\u202eevil"
HOSTILE_NAMES = sorted([BOLD_LINK, IMAGE_TAG, LINE_BREAK_AND_OVERRIDE])
MARKUP_FROM_NAMES = ("href=\"javascript", "<img", "<strong>bold", "<em>bold", "onerror=alert(1)>")
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
RUN_NAME = "20261207-120000-mobilenetv2_035-hostile"


def _shown(name: str) -> str:
    """The name as the rendered HTML should hold it: its text, a line break a space, the override visible."""
    return html.escape(terminal_text(name.replace("\n", " ")), quote=False)


def _run(page: str) -> AppTest:
    return AppTest.from_file(str(REPO / page), default_timeout=60).run()


def _markdown_values(app: AppTest) -> list[str]:
    """Every Markdown the page wrote: texts, messages, labels, image captions."""
    values = [str(element.value) for kind in ("markdown", "caption", "info", "success", "warning", "error", "subheader",
                                              "title", "toast")
              for element in getattr(app, kind)]
    values += [str(element.label) for kind in ("button", "expander", "selectbox", "metric", "toggle")
               for element in getattr(app, kind)]
    values += [caption for element in app.get("image") for caption in (element.captions or []) if caption]
    return values


def _assert_shown_as_text(app: AppTest) -> str:
    """No name turned into markup or hid a control character; returns the pages' text, rendered."""
    assert not app.exception, app.exception
    rendered = []
    for value in _markdown_values(app):
        assert not HIDDEN_CHARACTERS.search(value.replace("\n", "")), repr(value)
        html = MARKDOWN.render(value)
        assert not any(markup in html for markup in MARKUP_FROM_NAMES), (value, html)
        rendered.append(html)
    return "\n".join(rendered)


@pytest.fixture
def hostile_dataset(tmp_path, home):  # noqa: F811
    """Class folders the attack named (Linux allows a line break in a folder name), remembered as the dataset."""
    folder = write_class_folders(tmp_path / "hostile", {name: 6 for name in HOSTILE_NAMES}, size=48)
    home.mkdir(parents=True, exist_ok=True)
    (home / "app_state.json").write_text(json.dumps({"dataset_path": str(folder), "last_run": RUN_NAME}))
    return folder


def test_the_data_page_shows_hostile_class_names_as_text(hostile_dataset):
    app = _run("pages/data.py")

    text = _assert_shown_as_text(app)
    assert "Ready: 3 classes" in text
    for name in HOSTILE_NAMES:
        assert f"<strong>{_shown(name)}</strong> (6 pictures)" in text, name
    assert "new line\\u202eevil" in text  # the line break a space, the override visible


def _hostile_run(home, folder) -> None:
    run_dir = home / "runs" / RUN_NAME
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(tlcore.TrainConfig(data=str(folder), epochs=1).to_json())
    now = time.time()
    (run_dir / "status.json").write_text(json.dumps({"state": "completed", "message": "training finished.",
                                                     "started_at": now - 30, "ended_at": now, "epoch": 1, "epochs": 1}))
    (run_dir / "metrics.jsonl").write_text("")
    (run_dir / "labels.json").write_text(json.dumps(HOSTILE_NAMES))
    files = [str(path) for name in HOSTILE_NAMES for path in sorted((folder / name).iterdir())[:2]]
    truth = np.repeat(np.arange(3), 2)
    probabilities = np.full((6, 3), 0.1)
    probabilities[np.arange(6), (truth + 1) % 3] = 0.8  # every picture taken for the next class: mistakes to show
    (run_dir / "evaluation.json").write_text(json.dumps({"val": classification_report(truth, probabilities, HOSTILE_NAMES,
                                                                                      files)}))
    (run_dir / "split.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    (run_dir / "model.keras").write_bytes(b"not a real model")


def test_the_evaluate_page_shows_hostile_class_names_as_text(hostile_dataset, home):  # noqa: F811
    _hostile_run(home, hostile_dataset)

    app = _run("pages/evaluate.py")

    text = _assert_shown_as_text(app)
    for name in HOSTILE_NAMES:
        assert f"is <strong>{_shown(name)}</strong>, said <strong>" in text, name
    assert len(app.get("image")) == 6  # every mistake shown, each captioned as text
    table = app.dataframe[0].value
    assert sorted(table["class"]) == HOSTILE_NAMES  # a table cell is text already: the names as they are


# ----------------------------------------------------------------- Predict: every picture it can


def _png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def stand_in_model(populated, monkeypatch):  # noqa: F811
    """The real decoding and the real heatmap overlay, with a stand-in model (no TensorFlow model, no Grad-CAM)."""
    class StandIn:
        input_shape = (None, 32, 32, 3)

    labels = ["circle", "square", "star", "triangle"]
    monkeypatch.setattr(tlcore.results.prediction, "load_run_model", lambda run_dir: (StandIn(), labels))
    monkeypatch.setattr(tlcore.results.explain, "explain_arrays", lambda model, labels, batch, pictures, names: [
        tlcore.Explanation(names[0], "star", 0.9, "star", (("star", 0.9), ("circle", 0.1)), np.ones((2, 2)), "out_relu",
                           tlcore.results.explain.overlay_png(pictures[0], np.ones((2, 2))))])
    monkeypatch.setattr(tlcore.results.explain, "with_doubts", lambda run_dir, model, labels, made: made)


@pytest.mark.parametrize("heatmap", [True, False], ids=["heatmap", "picture"])
def test_predict_shows_every_picture_it_can_and_a_line_for_each_it_cannot(heatmap, stand_in_model):
    uploads = [("wide.png", _png_of_size(60000, 1)), ("a.png", _picture_png(3)), ("tall.png", _png_of_size(1, 60000)),
               ("text.jpg", b"this is no picture"), ("b.png", _picture_png(4))]
    app = _run("pages/predict.py")

    app.file_uploader(key="predict_upload").set_value([(name, data, "image/png") for name, data in uploads]).run()
    app.toggle(key="predict_heatmap").set_value(heatmap).run()

    assert not app.exception, app.exception
    texts = [element.value for element in app.markdown]
    assert texts.count("**star** (90% sure)") == 4, texts  # every picture that could be read has its answer
    assert [image.captions for image in app.get("image")] == [["a.png"], ["b.png"]]
    captions = [element.value for element in app.caption]
    assert "wide.png: 60000×1 pixels, too thin to show." in captions
    assert "tall.png: 1×60000 pixels, too thin to show." in captions
    warnings = [element.value for element in app.warning]
    assert any(warning.startswith("wide.png is 60000×1 pixels: the model squeezes") for warning in warnings), warnings
    assert any(warning.startswith("tall.png is 1×60000 pixels") for warning in warnings), warnings
    (error,) = [element.value for element in app.error]
    assert error.startswith("cannot classify 'text.jpg':"), error  # the name the user gave, not a server path
    assert "/tmp" not in error and "upload'" not in error and tlcore.tlcore_home().name not in error
    assert len(app.get("plotly_chart")) == 4


def test_a_picture_the_page_cannot_show_is_its_own_line_and_the_others_still_show(stand_in_model, monkeypatch, caplog):
    """Whatever fails for one picture (here, a bug in showing it) costs that picture only."""
    real = tlcore.thumbnail_jpeg

    def failing_for_the_first(data, size=160):
        if data == _picture_png(3):
            raise RuntimeError("a bug showing this one")
        return real(data, size)

    monkeypatch.setattr(tlcore.data.images, "thumbnail_jpeg", failing_for_the_first)
    app = _run("pages/predict.py")

    app.file_uploader(key="predict_upload").set_value([("a.png", _picture_png(3), "image/png"),
                                                       ("b.png", _picture_png(4), "image/png")]).run()
    app.toggle(key="predict_heatmap").set_value(False).run()

    assert not app.exception, app.exception
    (error,) = [element.value for element in app.error]
    assert error.startswith("a.png: something went wrong with this one")
    assert [image.captions for image in app.get("image")] == [["b.png"]]
    assert [record.getMessage() for record in caplog.records if "a bug" in (record.exc_text or "")]
    caplog.clear()


# ----------------------------------------------------------------- no server paths in what the user reads


def _folder_upload(app: AppTest, classes: tuple[str, ...]) -> AppTest:
    files = [(f"pets/{label}/{index}.png", _picture_png(10 * seed + index), "image/png")
             for seed, label in enumerate(classes) for index in range(3)]
    app.file_uploader(key="data_folder_upload").set_value(files).run()
    return app.button(key="data_use_folder_upload").click().run()


def test_the_data_page_never_says_where_an_upload_is_stored(home):  # noqa: F811
    app = _folder_upload(_run("pages/data.py"), ("cats", "dogs"))

    assert not app.exception and not app.error, [error.value for error in app.error]
    texts = _markdown_values(app)
    assert "Your pictures: pets" in texts
    assert not [text for text in texts if str(home) in text or "uploads/" in text]


def test_a_refused_upload_is_named_as_it_was_uploaded(home):  # noqa: F811
    app = _folder_upload(_run("pages/data.py"), ("cats",))

    (error,) = [element.value for element in app.error]
    assert error.startswith("'pets' has only the class 'cats'"), error
    assert str(home) not in error and "uploads" not in error
