"""`tlcore measure-speed`: the probe the presets' choice of network uses, timed on a few real files and kept."""

import pytest
from conftest import assert_clean_success, last_json_line, tlcore_cli

from tlcore.training import speed_probe
from tlcore.training.estimate import measured_speed


@pytest.mark.timeout(300)
def test_a_backbone_is_timed_on_a_few_pictures_and_the_figure_is_kept(tiny_dataset):
    files = sorted(str(path) for path in tiny_dataset.rglob("*.png"))[:8]

    result = tlcore_cli("measure-speed", "mobilenet_025", "--image-size", 32, *files)

    assert_clean_success(result)
    answer = last_json_line(result)
    assert answer["backbone"] == "mobilenet_025" and answer["images_per_s"] > 0
    assert speed_probe.kept_rate("mobilenet_025", 32) == pytest.approx(answer["images_per_s"])
    assert measured_speed("mobilenet_025", 32).images_per_s == pytest.approx(answer["images_per_s"])


def test_a_missing_picture_is_a_clear_error():
    result = tlcore_cli("measure-speed", "mobilenet_025", "/no/such/picture.jpg")

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no picture at '/no/such/picture.jpg'" in result.stderr
