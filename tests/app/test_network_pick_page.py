"""The Model page shows this computer's speed per network, the preset's pick and why, and asks before a large download."""

import json
import pathlib

import pytest
from conftest import RECORDED_RATES, home_with_recorded_speeds, write_class_folders
from streamlit.testing.v1 import AppTest

import tlcore.model.backbones

REPO = pathlib.Path(__file__).resolve().parents[2]
RATES = RECORDED_RATES  # a probe's figures on this computer: no measuring and no timing in the test


@pytest.fixture
def pictures(tmp_path, monkeypatch):
    """300 small pictures chosen on the Data page; weights here for the two small networks only; speeds recorded."""
    home_with_recorded_speeds(tmp_path, monkeypatch, weights_for=("mobilenetv2_035", "mobilenet_025"))
    data = write_class_folders(tmp_path / "flowers", {"daisy": 100, "rose": 100, "tulip": 100})
    (tmp_path / "home" / "app_state.json").write_text(json.dumps({"dataset_path": str(data)}))
    return data


def _texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "caption", "info", "warning")
                     for element in getattr(app, kind))


def test_the_model_page_shows_speeds_the_pick_and_asks_before_a_large_download(pictures, monkeypatch):
    monkeypatch.setattr(tlcore.model.backbones, "weights_server_reachable", lambda *args: True)
    app = AppTest.from_file(str(REPO / "pages/model.py"), default_timeout=60).run()

    assert not app.exception, app.exception
    table = app.dataframe[0].value  # the backbone table comes first
    rates = dict(zip(table["model"], table["pictures per second here"], strict=True))
    assert rates["MobileNetV2"] == "150" and rates["MobileNetV2 (width 0.35)"] == "450"
    texts = _texts(app)
    assert "The best-quality preset would pick MobileNetV2 (width 0.35): the strongest that finishes in about" in texts
    assert "MobileNetV2 would be stronger" in texts and "a download of about 9 MB" in texts
    assert app.selectbox(key="model_backbone").value == "auto"

    app.button(key="model_allow_download").click().run()

    assert not app.exception, app.exception
    assert "The best-quality preset would pick MobileNetV2: the strongest" in _texts(app)
    assert app.session_state["allowed_downloads"] == ["mobilenetv2_100"]


def test_without_internet_the_page_says_in_one_line_which_stronger_network_is_missing(pictures):
    app = AppTest.from_file(str(REPO / "pages/model.py"), default_timeout=60).run()  # the tests are offline

    assert not app.exception, app.exception
    notes = [element.value for element in app.info if "would be stronger" in element.value]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "no internet" in notes[0] and "using MobileNetV2 (width 0.35)" in notes[0]


def test_the_old_default_network_remembered_by_an_earlier_version_is_left_to_the_preset(pictures):
    home = pathlib.Path(str(pictures)).parent / "home"
    state = json.loads((home / "app_state.json").read_text())
    state["model_choice"] = {"backbone": "mobilenetv2_035", "freeze": "auto", "dropout": 0.2}  # no version mark
    (home / "app_state.json").write_text(json.dumps(state))

    app = AppTest.from_file(str(REPO / "pages/model.py"), default_timeout=60).run()

    assert not app.exception, app.exception
    assert app.selectbox(key="model_backbone").value == "auto"
    app.selectbox(key="model_backbone").set_value("mobilenetv2_035").run()
    assert app.session_state["model_choice"]["backbone"] == "mobilenetv2_035"  # picked by hand now: kept
    rerun = AppTest.from_file(str(REPO / "pages/model.py"), default_timeout=60).run()
    assert rerun.selectbox(key="model_backbone").value == "mobilenetv2_035"
