"""The app in a real browser: every page by its own address on a fresh server, then the whole journey.

Starts `streamlit run app.py` on a free port with its own TLCORE_HOME (for the
journey also a KERAS_HOME holding the offline ImageNet weights from
`<repo>/../shared`), then drives Debian's Chromium with Playwright. Screenshots
of each page of the journey are saved in `test-artifacts/` (the README's
pictures in assets/ come from there); the last test downloads the Export page's zip.
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = REPO.parent / "shared" / "keras-weights"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"

MENU = ["Start", "Data", "Model", "Train", "Evaluate", "Predict", "Export"]
APP_ERROR = "This app has encountered an error"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium (`apt-get install chromium`)"),
]
needs_weights = pytest.mark.skipif(
    not (SHARED_WEIGHTS / WEIGHTS_FILE).is_file(),
    reason=f"offline ImageNet weights not found in {SHARED_WEIGHTS} (the shared folder beside the repo)",
)

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_health(url: str, process: subprocess.Popen, log: pathlib.Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy in {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop_workers(home: pathlib.Path) -> None:
    """End training processes this test's app started (they run in their own session)."""
    for pid_file in (home / "runs").glob("*/worker.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def _serve(root: pathlib.Path, **environment):
    """`streamlit run app.py` on a free port with TLCORE_HOME in `root`; yields its address and TLCORE_HOME."""
    home = root / "tlcore-home"
    port = _free_port()
    log = root / "streamlit.log"
    env = dict(os.environ, TLCORE_HOME=str(home), KERAS_HOME=str(root / "keras"), TF_CPP_MIN_LOG_LEVEL="3",
               **environment)
    env.pop("TLCORE_DATA_ROOTS", None)
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, log)
        yield url, home
    finally:
        _stop_workers(home)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        _stop_workers(home)


@contextlib.contextmanager
def _chromium():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _new_page(browser):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(30_000)
    return page


# ----------------------------------------------------------------- every page by its own address


class TestPagesByAddressOnAFreshServer:
    """A bookmark or a shared link is the first thing a server gets: each page must open through app.py's menu.

    With a pages/ folder beside app.py, Streamlit would run such a page on its
    own (file names as the menu, app.py's settings skipped) until "/" was opened.
    """

    @pytest.fixture(scope="class")
    def fresh_app(self, tmp_path_factory):
        with _serve(tmp_path_factory.mktemp("fresh"), TLCORE_SPARE="0") as (url, _home):
            yield url

    @pytest.fixture(scope="class")
    def browser(self, fresh_app):
        with _chromium() as browser:
            yield browser

    # In this order, and before "/": the first request the server gets is a page's own address.
    @pytest.mark.parametrize("address, heading", [
        ("/data", "Data: your pictures"),
        ("/train?run=x", "Train: teach the model your classes"),
        ("/evaluate", "Evaluate: how good is it?"),
        ("/export", "Export: take your model with you"),
        ("/", "Teach a computer to recognise your pictures"),
    ])
    def test_a_page_opened_by_its_address_shows_the_apps_menu(self, fresh_app, browser, address, heading):
        page = _new_page(browser)
        page.goto(fresh_app + address)

        expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60_000)
        menu = page.locator('[data-testid="stSidebarNav"]').get_by_role("link")
        expect(menu).to_have_text(MENU)
        assert page.get_by_text(APP_ERROR).count() == 0
        page.context.close()


# ----------------------------------------------------------------- the journey


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The running app's address and its TLCORE_HOME."""
    root = tmp_path_factory.mktemp("journey")
    keras_models = root / "keras" / "models"
    keras_models.mkdir(parents=True)
    for weights in list(SHARED_WEIGHTS.glob("*.h5")) + list(SHARED_WEIGHTS.glob("*.json")):
        shutil.copy(weights, keras_models / weights.name)
    # With spares on, as for a user: the Train page readies a training process before Start is clicked.
    with _serve(root, TLCORE_SPARE="1") as served:
        yield served


@pytest.fixture(scope="module")
def page(app):
    with _chromium() as browser:
        page = _new_page(browser)
        page.goto(app[0])
        yield page


def _shot(page, name: str) -> None:
    """Save the whole page: Streamlit scrolls inside its main area, so grow the window to fit it first."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1395, 995)  # no tooltip in the picture
    page.wait_for_timeout(700)  # let charts finish drawing
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height), 5000))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def _open(page, label: str, heading: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label, exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(heading))).to_be_visible()


def _chart_points(page) -> int:
    """Markers drawn in the live accuracy and loss charts."""
    return page.locator(".js-plotly-plot .scatterlayer .trace .points path").count()


@needs_weights
def test_journey_from_demo_data_to_prediction(app, page):
    home = app[1]
    expect(page.get_by_role("heading", name="Teach a computer to recognise your pictures")).to_be_visible()
    _shot(page, "00-start")
    page.get_by_role("button", name="Use demo dataset").click()  # the landing page's shortcut leads to Data
    expect(page.get_by_role("heading", name="Data: your pictures")).to_be_visible(timeout=60_000)

    _open(page, "Data", "Data: your pictures")
    page.get_by_role("button", name="Use demo dataset").click()
    expect(page.get_by_text("Ready: 4 classes")).to_be_visible(timeout=60_000)
    _shot(page, "01-data")

    _open(page, "Model", "Model:")
    # The preset chooses what learns; on a fresh computer the page first times the networks it may pick (seconds each).
    expect(page.get_by_text("The Train page's preset decides")).to_be_visible(timeout=180_000)
    _shot(page, "02-model")

    _open(page, "Train", "Train:")
    expect(page.get_by_text("How should it learn?")).to_be_visible()
    expect(page.get_by_text(re.compile(r"What it will do:.*top 2 blocks of the pretrained model \(block_16 and top\) learn too"))).to_be_visible()
    _shot(page, "03-train-presets")
    # Long enough that Stop finds it still running: the demo trains an epoch in well under a second.
    page.get_by_text("Details for experts").click()
    epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    expect(page.get_by_text("Changed by hand: epochs")).to_be_visible()
    expect(page.get_by_text(re.compile("^Time: about"))).to_be_visible()
    _shot(page, "03-train-settings")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=90_000)
    first = _chart_points(page)
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace .points path').length > n",
        arg=first, timeout=60_000,
    )
    assert _chart_points(page) > first
    # A few epochs for the picture: 4 markers per epoch (2 charts x training and validation).
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace .points path').length >= 16",
        timeout=60_000,
    )
    _shot(page, "04-train-live")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_text(re.compile("Training stopped"))).to_be_visible(timeout=60_000)
    _shot(page, "05-train-done")

    _open(page, "Evaluate", "Evaluate:")
    expect(page.locator(".js-plotly-plot").filter(has_text="Confusion matrix")).to_be_visible(timeout=60_000)
    _shot(page, "06-evaluate")

    _open(page, "Predict", "Predict:")
    demo_picture = home / "demo" / "shapes" / "star" / "star_000.jpg"
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(demo_picture))
    expect(page.get_by_text(re.compile(r"\(\d+% sure\)"))).to_be_visible(timeout=120_000)
    _shot(page, "07-predict")



@needs_weights
def test_export_hands_over_one_checked_zip(app, page, tmp_path):
    # The journey's run: the Export page makes the zip, shows the parity table, and the browser downloads it.
    _open(page, "Export", "Export:")
    page.get_by_role("button", name="Prepare the zip").click()
    download = page.get_by_role("button", name=re.compile(r"^Download tlcore-.*\.zip$"))
    expect(download).to_be_visible(timeout=300_000)
    expect(page.get_by_text("Checked outside the app")).to_be_visible()
    _shot(page, "08-export")

    with page.expect_download() as downloaded:
        download.click()

    saved = tmp_path / downloaded.value.suggested_filename
    downloaded.value.save_as(saved)
    names = {name.split("/", 1)[1] for name in zipfile.ZipFile(saved).namelist()}
    assert {"MODEL_CARD.md", "labels.json", "model.keras", "model.tflite", "model.onnx", "predict_onnx.py",
            "web/index.html"} <= names

# ----------------------------------------------------------------- see why it is wrong and fix it in place


def _tiny_run(home: pathlib.Path) -> pathlib.Path:
    """A short run on the demo shapes in the app's TLCORE_HOME, trained through the CLI (3 epochs)."""
    env = dict(os.environ, TLCORE_HOME=str(home), KERAS_HOME=str(home.parent / "keras"), TLCORE_SPARE="0",
               TF_CPP_MIN_LOG_LEVEL="3")
    demo = subprocess.run([sys.executable, "-m", "tlcore", "demo"], capture_output=True, text=True, env=env, cwd=REPO,
                          check=True).stdout.strip().splitlines()[-1]
    done = subprocess.run([sys.executable, "-m", "tlcore", "train", demo, "--epochs", "3", "--json"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return pathlib.Path(json.loads(done.stdout.strip().splitlines()[-1])["run_dir"])


def _cell_to_click(run_dir: pathlib.Path) -> tuple[int, int]:
    """A cell that holds pictures: a mistake when there is one, else the first class's right answers."""
    matrix = json.loads((run_dir / "evaluation.json").read_text())["val"]["confusion"]
    wrong = [(row, column) for row, counts in enumerate(matrix) for column, count in enumerate(counts)
             if count and row != column]
    return wrong[0] if wrong else (0, 0)


def _click_cell(page, row: int, column: int, classes: int) -> None:
    """Click the middle of a confusion-matrix cell (rows from the top, columns from the left)."""
    area = page.locator(".js-plotly-plot").filter(has_text="Confusion matrix").locator(".nsewdrag").first
    box = area.bounding_box()
    page.mouse.click(box["x"] + (column + 0.5) * box["width"] / classes, box["y"] + (row + 0.5) * box["height"] / classes)


def _settled(page) -> None:
    """Wait until the script run that the last action started has ended (a click during one can be lost)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=120_000)


@needs_weights
def test_a_picture_moved_to_its_class_and_trained_again_shows_both_runs(app, page):
    url, home = app
    run_dir = _tiny_run(home)
    classes = json.loads((run_dir / "labels.json").read_text())
    row, column = _cell_to_click(run_dir)
    page.goto(f"{url}/evaluate?run={run_dir.name}")
    expect(page.locator(".js-plotly-plot").filter(has_text="Confusion matrix")).to_be_visible(timeout=60_000)

    _settled(page)
    _click_cell(page, row, column, len(classes))
    heading = f"Pictures where it is {classes[row]}, said {classes[column]}"
    expect(page.get_by_text(re.compile("^" + heading))).to_be_visible(timeout=60_000)
    # The heatmaps load the model the first time: wait until they are drawn and the page has settled.
    expect(page.get_by_text(re.compile("^Heatmaps: the colours show where"))).to_be_visible(timeout=120_000)
    _settled(page)
    _shot(page, "09-evaluate-explorer")

    target = next(name for name in classes if name != classes[row])
    menu = page.get_by_role("combobox", name="In the wrong folder? Move to…").first
    menu.click()
    menu.fill(target)
    menu.press("Enter")
    expect(page.get_by_text(f"Moved to '{target}'")).to_be_visible()
    _settled(page)
    page.get_by_role("button", name=re.compile(r"Train again with these fixes \(1\)")).click()
    expect(page.get_by_role("heading", name="Before and after your fixes")).to_be_visible(timeout=240_000)
    expect(page.get_by_text(re.compile(r"^Fixed: wrong before, right now"))).to_be_visible()
    _shot(page, "10-evaluate-before-after")

    _open(page, "Data", "Data: your pictures")
    page.get_by_role("button", name="Use demo dataset").click()
    changes = page.get_by_text(re.compile(r"^Your changes: 0 left out, 1 moved"))
    expect(changes).to_be_visible(timeout=60_000)
    changes.click()
    _shot(page, "11-data-edits")
