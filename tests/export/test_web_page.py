"""The web page in a real Chromium: pictures.js prepares pictures as the app does, and the page runs model.onnx.

The page loads ONNX Runtime Web from jsDelivr; here those requests are answered
from the npm package (`npm pack onnxruntime-web@VERSION`, cached in
~/.cache/tlcore-tests), so nothing but the package registry is reached. Skips
with the reason when Chromium, npm or the package is unavailable.
"""

import base64
import contextlib
import functools
import http.server
import os
import pathlib
import subprocess
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from tlcore.export.bundle import make_bundle
from tlcore.export.pictures import jpeg_reduction, prepare_picture
from tlcore.export.snippets import ONNX_RUNTIME_WEB_VERSION
from tlcore.results.prediction import predict_files
from tlcore.runs import folder as run_folder

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WEB_FOLDER = pathlib.Path(__file__).resolve().parents[2] / "tlcore" / "export" / "web"
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "tlcore-tests"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium (`apt-get install chromium`)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def browser_page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            yield page
        finally:
            browser.close()


# ----------------------------------------------------------------- pictures.js against tlcore.export.pictures


def _smooth(width, height, seed=3) -> Image.Image:
    coarse = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def _turned(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# Photo-like pictures (no transparency, 8 bits): what browsers decode as Pillow does.
WEB_PICTURES = {
    "photo.jpg": (lambda: _smooth(500, 375), {"quality": 92}),
    "phone.jpg": (lambda: _smooth(1600, 1200, seed=4), {"quality": 90}),
    "small.jpg": (lambda: _smooth(60, 41), {}),
    "gray.jpg": (lambda: _smooth(300, 200).convert("L"), {}),
    "turned_6.jpg": (lambda: _smooth(320, 240), {"exif": _turned(6)}),
    "screen.png": (lambda: _smooth(224, 224), {}),
    "palette.png": (lambda: _smooth(180, 250).convert("P"), {}),
}


def _reduced_by_the_app(path, size) -> bool:
    """Whether the app decodes this picture at a reduced JPEG scale, which no browser can (pictures.js averages blocks)."""
    with Image.open(path) as picture:
        return picture.format == "JPEG" and jpeg_reduction(*picture.size, size) > 1


@pytest.mark.parametrize("size", [224, 32])
def test_pictures_js_prepares_pictures_as_the_app(browser_page, tmp_path, size):
    browser_page.goto("about:blank")
    browser_page.add_script_tag(content=(WEB_FOLDER / "pictures.js").read_text())
    for name, (make, options) in WEB_PICTURES.items():
        make().save(tmp_path / name, **options)
        encoded = base64.b64encode((tmp_path / name).read_bytes()).decode()

        pixels = browser_page.evaluate("""async ([data, size]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            return Array.from(await tlcorePictures.preparePicture(new Blob([bytes]), size));
        }""", [encoded, size])

        wanted = prepare_picture(tmp_path / name, size)
        gap = np.abs(np.asarray(pixels, dtype=np.float32).reshape(wanted.shape) - wanted)
        if _reduced_by_the_app(tmp_path / name, size):
            assert gap.mean() < 0.5 and gap.max() <= 4, f"{name}: {gap.mean():.2f} levels apart on average, {gap.max()} at most"
        else:
            assert int((gap > 0).sum()) == 0, f"{name}: {int((gap > 0).sum())} values differ"


# ----------------------------------------------------------------- the bundle's page runs model.onnx


def _onnxruntime_web() -> pathlib.Path:
    """The dist/ folder of the onnxruntime-web npm package the page names; skips when it cannot be had."""
    folder = CACHE / f"onnxruntime-web-{ONNX_RUNTIME_WEB_VERSION}"
    dist = folder / "package" / "dist"
    if (dist / "ort.wasm.min.js").is_file():
        return dist
    folder.mkdir(parents=True, exist_ok=True)
    try:
        packed = subprocess.run(["npm", "pack", f"onnxruntime-web@{ONNX_RUNTIME_WEB_VERSION}", "--silent"], cwd=folder,
                                capture_output=True, text=True, timeout=300)
        archive = folder / packed.stdout.strip().splitlines()[-1]
        subprocess.run(["tar", "xzf", archive.name], cwd=folder, check=True, timeout=120)
    except (OSError, IndexError, subprocess.SubprocessError) as error:
        pytest.skip(f"onnxruntime-web {ONNX_RUNTIME_WEB_VERSION} is not available (npm pack failed: {error})")
    if not (dist / "ort.wasm.min.js").is_file():
        pytest.skip(f"onnxruntime-web {ONNX_RUNTIME_WEB_VERSION} could not be fetched with npm ({packed.stderr[-300:]})")
    return dist


CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ONNX_RUNTIME_WEB_VERSION}/dist/"
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def _from_package(dist: pathlib.Path, route) -> None:
    """Answer a request for jsDelivr's copy of the package with the local one, as the CDN does (CORS allowed)."""
    file = dist / route.request.url[len(CDN):].split("?")[0]
    if not file.is_file():
        route.fulfill(status=404, body="not in the package")
        return
    route.fulfill(body=file.read_bytes(), content_type=_TYPES.get(file.suffix, "application/octet-stream"),
                  headers={"Access-Control-Allow-Origin": "*"})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test's output
        pass


@contextlib.contextmanager
def _served(folder: pathlib.Path):
    """The folder over http on a free local port, as `python3 -m http.server` would serve it."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_bundles_web_page_gives_the_apps_answers_on_real_photos(browser_page, flowers_run, tmp_path):
    dist = _onnxruntime_web()
    _, result = flowers_run
    bundle = make_bundle(result.run_dir, ["onnx"], tmp_path / "web.zip")
    with zipfile.ZipFile(bundle.path) as archive:
        archive.extractall(tmp_path / "unzipped")
    (top,) = (tmp_path / "unzipped").iterdir()
    files = [entry[2] for entry in run_folder.read_json(pathlib.Path(result.run_dir) / run_folder.SPLIT_FILE)["val"]]
    expected = [prediction.top[0][0] for prediction in predict_files(result.run_dir, files, top_k=1)]
    browser_page.route(CDN + "**", functools.partial(_from_package, dist))

    with _served(top) as address:
        browser_page.goto(address + "/web/")
        sync_api.expect(browser_page.get_by_text("Ready.")).to_be_visible(timeout=120_000)  # compiles 14 MB of wasm
        browser_page.locator("#pictures").set_input_files(files)
        browser_page.wait_for_function(f"globalThis.tlcoreResults.length === {len(files)}")
        results = browser_page.evaluate("globalThis.tlcoreResults")

    assert [row["file"] for row in results] == [pathlib.Path(file).name for file in files]
    assert [row["label"] for row in results] == expected
