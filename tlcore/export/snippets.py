"""The code a user runs an exported model with: one Python script per format, and JavaScript for the web.

Each Python snippet is a whole script (`python3 predict_tflite.py photo.jpg`)
that prepares pictures with the functions of `tlcore.export.pictures`, copied
in as they stand, so it gives the app's answers; CI runs every one on real
photos against `tlcore predict`. The web page (`web/index.html` and
`web/pictures.js` in the bundle) runs the ONNX file with ONNX Runtime Web and
prepares pictures with a line-by-line JavaScript port of the same functions.
"""

from __future__ import annotations

import ast
import importlib.resources
import inspect
import os
from dataclasses import dataclass

from tlcore.export import pictures
from tlcore.export.formats import FORMATS, export_format
from tlcore.text import html_text

ONNX_RUNTIME_WEB_VERSION = "1.30.0"  # the page loads this release from jsDelivr; the browser test runs it

# Per runtime: its import, then how a prepared picture becomes probabilities.
_LOADERS = {
    "keras": ("import keras", """model = keras.saving.load_model(MODEL)  # safe_mode: stock Keras layers only, no code runs


def probabilities_of(pixels):
    return model.predict_on_batch(pixels[None])[0]"""),
    "tensorflow": ("import tensorflow as tf", """model = tf.saved_model.load(MODEL)


def probabilities_of(pixels):
    return model.serve(tf.constant(pixels[None])).numpy()[0]"""),
    "ai_edge_litert": ("from ai_edge_litert.interpreter import Interpreter", """interpreter = Interpreter(model_path=MODEL)
interpreter.allocate_tensors()
given, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def probabilities_of(pixels):
    interpreter.set_tensor(given["index"], pixels[None])
    interpreter.invoke()
    return interpreter.get_tensor(result["index"])[0]"""),
    "onnxruntime": ("import onnxruntime", """session = onnxruntime.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name


def probabilities_of(pixels):
    return session.run(None, {input_name: pixels[None]})[0][0]"""),
}

_HEADER = '''"""Classify pictures with {file_name} exactly as the tlcore app does.

Run it in the folder that holds {file_name} and labels.json:
    python3 {script} photo.jpg [more.jpg ...]
Needs: pip install {pip} numpy
"""

import json
import sys

'''

_MAIN = '''labels = json.load(open("labels.json", encoding="utf-8"))
for path in sys.argv[1:]:
    probabilities = probabilities_of(prepare_picture(path, SIZE))
    best = int(np.argmax(probabilities))
    print(f"{path}: {labels[best]} ({probabilities[best]:.1%})")
'''


@dataclass(frozen=True)
class Snippet:
    """Code that runs one export format outside the app.

    Attributes:
        format: the export format's name.
        language: "python" or "javascript".
        file_name: the name it has in the bundle ("predict_onnx.py").
        code: the code itself.
    """

    format: str
    language: str
    file_name: str
    code: str


def script_name(format: str) -> str:
    """The Python snippet's file name: "predict_tflite_int8.py"."""
    return f"predict_{export_format(format).name.replace('-', '_')}.py"


def python_snippet(format: str, image_size: int) -> str:
    """The whole Python script that classifies pictures with an exported file."""
    spec = export_format(format)
    runtime_import, loader = _LOADERS[spec.runtime]
    imports, picture_code = _picture_code(runtime_import)
    parts = [
        _HEADER.format(file_name=spec.file_name, script=script_name(format), pip=spec.pip) + imports + "\n\n"
        f'SIZE = {int(image_size)}  # the square picture size the model takes\nMODEL = "{spec.file_name}"',
        "# Pictures are prepared exactly as the tlcore app prepares them (tlcore/export/pictures.py).\n"
        + picture_code,
        loader,
        _MAIN,
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def _picture_code(runtime_import: str) -> tuple[str, str]:
    """`tlcore.export.pictures` as it stands, without its docstring: (its imports and the runtime's, the rest)."""
    source = inspect.getsource(pictures)
    imports, code = [runtime_import], []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        (imports if isinstance(node, (ast.Import, ast.ImportFrom)) else code).append(ast.get_source_segment(source, node))
    # As isort sorts them: plain imports first, then `from` imports, each by module name.
    imports.sort(key=lambda line: (line.startswith("from "), line.split()[1].lower()))
    return "\n".join(imports), "\n\n\n".join(code)


def javascript_snippet(image_size: int) -> str:
    """How a web page of one's own runs the ONNX file (the bundle's web/ folder has a whole page)."""
    size = int(image_size)
    return f'''// In the page: ONNX Runtime Web, and pictures.js from the bundle's web/ folder (prepares pictures as the app does).
// <script src="https://cdn.jsdelivr.net/npm/onnxruntime-web@{ONNX_RUNTIME_WEB_VERSION}/dist/ort.wasm.min.js"></script>
// <script src="pictures.js"></script>
const session = await ort.InferenceSession.create("model.onnx", {{ executionProviders: ["wasm"] }});
const labels = await (await fetch("labels.json")).json();

async function classify(file) {{  // a File from <input type="file">, or any image Blob
  const pixels = await tlcorePictures.preparePicture(file, {size});
  const output = await session.run({{ [session.inputNames[0]]: new ort.Tensor("float32", pixels, [1, {size}, {size}, 3]) }});
  const probabilities = Array.from(output[session.outputNames[0]].data);
  const best = probabilities.indexOf(Math.max(...probabilities));
  return {{ label: labels[best], probability: probabilities[best] }};
}}
'''


def web_page_files(image_size: int, title: str) -> dict[str, str]:
    """The bundle's web page: {"web/index.html": ..., "web/pictures.js": ...}; it loads ../model.onnx."""
    folder = importlib.resources.files("tlcore.export") / "web"
    page = (folder / "index.html").read_text(encoding="utf-8")
    page = (page.replace("__TITLE__", html_text(title)).replace("__IMAGE_SIZE__", str(int(image_size)))
            .replace("__ORT_VERSION__", ONNX_RUNTIME_WEB_VERSION))
    return {"web/index.html": page, "web/pictures.js": (folder / "pictures.js").read_text(encoding="utf-8")}


def export_snippets(run_dir: str | os.PathLike) -> list[Snippet]:
    """Every format's snippet for a run's model, at the run's picture size, the web one last.

    Args:
        run_dir: a run folder (its config names the picture size).

    Returns:
        One Python `Snippet` per format, then the JavaScript one for the ONNX file.
    """
    from tlcore.training.config import TrainConfig

    size = TrainConfig.from_run(run_dir).resolved_image_size
    snippets = [Snippet(name, "python", script_name(name), python_snippet(name, size)) for name in FORMATS]
    snippets.append(Snippet("onnx", "javascript", "web/classify.js", javascript_snippet(size)))
    return snippets
