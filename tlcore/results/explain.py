"""Where the model looked: Grad-CAM heatmaps of a run's model, kept in the run folder.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the backbone's last
convolutional feature map by how much it raises the class's score (the mean
gradient of the logit over the map), sums them and keeps the positive part: a
coarse map (7x7 for a 224 px MobileNetV2) of the places that made the model
say that class, drawn over the picture.

The model tlcore builds is raw pixels -> preprocessing -> backbone (a nested
Keras model) -> pooling -> dropout -> dense softmax. The feature map is found
generically: the last layer of the nested backbone whose output is 4-D. The
explainer is a model from the raw image to [that map, the backbone's output];
the head (pooling and the dense layer, without its softmax, so the score does
not saturate) is applied on top inside the gradient tape. Augmentation layers
are left out and the backbone runs with `training=False`, so BatchNormalization
stays in inference mode. Gradients use TensorFlow's GradientTape: heatmaps need
the TensorFlow backend (the default).

A heatmap of a file is kept in `RUN_DIR/explanations/` (a PNG of the overlay
and a JSON of the map and the probabilities), keyed by the file's path, size
and modification time and the model file's, so the Evaluate page shows it again
without loading the model, and an edited photo or a retrained model gets a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import weakref
from dataclasses import dataclass, field

import numpy as np

from tlcore.errors import InputError
from tlcore.runs import folder as run_folder

EXPLANATIONS_DIR = "explanations"
OVERLAY_PIXELS = 320  # the longer side of an overlay picture
OVERLAY_OPACITY = 0.5
EXPLAIN_BATCH = 16

# A perceptually ordered colour map (dark blue -> cyan -> yellow -> red), as anchors to interpolate.
_COLOUR_ANCHORS = np.array([
    [0.0, 20, 20, 120], [0.25, 30, 110, 220], [0.5, 40, 200, 200], [0.75, 250, 220, 40], [1.0, 220, 30, 30],
])


@dataclass(frozen=True)
class Explanation:
    """A picture's class, how sure the model is, and where it looked.

    Attributes:
        file: the picture (as given; "upload" for bytes).
        predicted: the class the model gives it.
        probability: how sure it is of that class (0..1).
        explained: the class the heatmap is for (the predicted one unless asked otherwise).
        top: every class with its probability, most likely first.
        heatmap: the Grad-CAM map, (rows, columns) in 0..1, at the feature map's resolution.
        layer: the backbone layer whose output the map comes from.
        overlay_png: the heatmap drawn over the picture, as PNG bytes.
        path: where the overlay is kept (in the run folder, or where `explain` wrote it); None if not kept.
        pooled: the picture's pooled features (what the classifier sees), for the doubt rule.
        doubt: whether the picture looks like none of the classes (`tlcore.results.doubt.Doubt`), when asked for.
    """

    file: str
    predicted: str
    probability: float
    explained: str
    top: tuple[tuple[str, float], ...]
    heatmap: np.ndarray
    layer: str
    overlay_png: bytes = field(repr=False, default=b"")
    path: str | None = None
    pooled: np.ndarray | None = field(repr=False, default=None)
    doubt: object = None

    def peak(self) -> tuple[float, float]:
        """Where the heatmap is hottest: (row, column) of its cell's centre as fractions of the picture's height and width."""
        rows, columns = self.heatmap.shape
        row, column = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return ((row + 0.5) / rows, (column + 0.5) / columns)

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "predicted": self.predicted,
            "probability": self.probability,
            "explained": self.explained,
            "top": [{"class": name, "probability": value} for name, value in self.top],
            "heatmap": self.path,
            "peak": list(self.peak()),
            "layer": self.layer,
            **({"unfamiliar": self.doubt.unfamiliar, "doubt": self.doubt.to_dict()} if self.doubt is not None else {}),
        }

    def probabilities(self, labels: list[str]) -> np.ndarray:
        """The probabilities in the model's output order."""
        found = dict(self.top)
        return np.array([found.get(name, 0.0) for name in labels])


# ----------------------------------------------------------------- the explainer model


def last_conv_layer(backbone):
    """The last layer of a backbone whose output is a 4-D feature map (batch, rows, columns, channels).

    Raises:
        InputError: the backbone has no such layer (it is not convolutional).
    """
    for layer in reversed(backbone.layers):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer used twice, or one without a single output
            continue
        if len(shape) == 4:
            return layer
    raise InputError(f"the backbone {backbone.name!r} has no layer with a 4-D output, so there is no feature map "
                     "to draw a heatmap from; heatmaps need a convolutional backbone (every one `tlcore backbones` lists).")


_EXPLAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def explainer_for(model):
    """(explainer, feature layer name) for a tlcore model: raw image -> [last feature map, backbone output].

    Built once per model object; the layers are shared with it (no copy of the weights).
    """
    try:
        return _EXPLAINERS[model]
    except (KeyError, TypeError):
        pass
    import keras

    from tlcore.model.build import BACKBONE_LAYER, PREPROCESS_LAYER

    backbone = model.get_layer(BACKBONE_LAYER)
    conv = last_conv_layer(backbone)
    inner = keras.Model(backbone.inputs, [conv.output, backbone.outputs[0]], name="tlcore_feature_map")
    size = model.input_shape[1]
    inputs = keras.Input(shape=(size, size, 3), name="image")
    feature_map, features = inner(model.get_layer(PREPROCESS_LAYER)(inputs), training=False)
    built = (keras.Model(inputs, [feature_map, features], name=model.name + "_explainer"), conv.name)
    try:
        _EXPLAINERS[model] = built
    except TypeError:
        pass
    return built


def grad_cam(model, batch: np.ndarray, class_indices=None, compiled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Grad-CAM maps of a batch of raw images (0-255, model input size).

    Args:
        model: a tlcore classifier (as `load_run_model` gives it).
        batch: float32 images, shape (N, size, size, 3).
        class_indices: the class to explain per image; None explains the predicted class.
        compiled: run the step as a TensorFlow graph (traced once per model, then
            several times faster); False runs it eagerly, which pays off for one or two calls.

    Returns:
        (maps (N, rows, columns) in 0..1, probabilities (N, classes), pooled features (N, channels), layer name).
    """
    import tensorflow as tf

    explainer, layer = explainer_for(model)
    step = _compiled_step(model, explainer) if compiled else _step_function(model, explainer)
    batch = np.asarray(batch, dtype="float32")
    if not len(batch):
        return np.zeros((0, 1, 1)), np.zeros((0, model.output_shape[-1])), np.zeros((0, 0)), layer
    chosen = np.full(len(batch), -1) if class_indices is None else np.asarray(class_indices)
    parts = []
    for start in range(0, len(batch), EXPLAIN_BATCH):
        # Always a full batch (padded with black images), so the graph is traced once.
        images, wanted = batch[start:start + EXPLAIN_BATCH], chosen[start:start + EXPLAIN_BATCH]
        padding = EXPLAIN_BATCH - len(images)
        images = np.concatenate([images, np.zeros((padding, *images.shape[1:]), "float32")]) if padding else images
        wanted = np.concatenate([wanted, np.full(padding, -1)]) if padding else wanted
        outputs = step(tf.convert_to_tensor(images), tf.convert_to_tensor(wanted, tf.int64))
        parts.append([output.numpy()[:EXPLAIN_BATCH - padding] for output in outputs])
    maps, probabilities, pooled = (np.concatenate([part[i] for part in parts]) for i in range(3))
    peaks = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
    return maps, probabilities, pooled, layer


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_step(model, explainer):
    """The gradient step as one TensorFlow graph (traced once per model; about 5x faster than running it eagerly)."""
    import tensorflow as tf

    try:
        return _STEPS[model]
    except (KeyError, TypeError):
        pass
    step = tf.function(_step_function(model, explainer), reduce_retracing=True)
    try:
        _STEPS[model] = step
    except TypeError:
        pass
    return step


def _step_function(model, explainer):
    """images, chosen class (-1: the predicted one) -> (Grad-CAM maps, probabilities, pooled features)."""
    import tensorflow as tf

    from tlcore.model.build import CLASSIFIER_LAYER, POOL_LAYER

    classifier, pool = model.get_layer(CLASSIFIER_LAYER), model.get_layer(POOL_LAYER)

    def step(images, chosen):
        with tf.GradientTape() as tape:
            tape.watch(images)  # frozen layers hold no watched variables: record everything from the pixels on
            feature_map, features = explainer(images, training=False)
            pooled = tf.cast(pool(features), tf.float32)
            # The score explained is the logit (the dense layer without its softmax), which does not saturate.
            logits = tf.matmul(pooled, tf.cast(classifier.kernel, tf.float32)) + tf.cast(classifier.bias, tf.float32)
            chosen = tf.where(chosen < 0, tf.argmax(logits, axis=1), chosen)
            scores = tf.gather(logits, chosen, axis=1, batch_dims=1)
        gradients = tf.cast(tape.gradient(scores, feature_map), tf.float32)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        maps = tf.nn.relu(tf.reduce_sum(weights * tf.cast(feature_map, tf.float32), axis=-1))
        return maps, tf.nn.softmax(logits), pooled

    return step


# ----------------------------------------------------------------- pictures


def overlay_png(picture, heatmap: np.ndarray, opacity: float = OVERLAY_OPACITY) -> bytes:
    """The heatmap, smoothly enlarged, drawn over a picture (a PIL image), as PNG bytes.

    The model sees the picture squeezed into a square, so the map covers the
    whole picture whatever its shape; it is stretched back to the picture's own.
    """
    from PIL import Image

    picture = picture.convert("RGB")
    picture.thumbnail((OVERLAY_PIXELS, OVERLAY_PIXELS))
    grey = Image.fromarray(np.uint8(np.clip(heatmap, 0, 1) * 255), "L").resize(picture.size, Image.Resampling.BILINEAR)
    values = np.asarray(grey, dtype="float32") / 255.0
    colours = np.stack([np.interp(values, _COLOUR_ANCHORS[:, 0], _COLOUR_ANCHORS[:, channel]) for channel in (1, 2, 3)], -1)
    alpha = (opacity * (0.35 + 0.65 * values))[..., None]  # cold places tinted, hot places coloured
    blended = np.asarray(picture, dtype="float32") * (1 - alpha) + colours * alpha
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(blended, 0, 255)), "RGB").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _build(shown, labels, maps, probabilities, pooled, layer, chosen, pictures) -> list[Explanation]:
    explanations = []
    for index in range(len(shown)):
        row = probabilities[index]
        order = np.argsort(-row)
        explanations.append(Explanation(
            file=shown[index], predicted=labels[int(order[0])], probability=float(row[order[0]]),
            explained=labels[int(chosen[index])] if chosen is not None else labels[int(order[0])],
            top=tuple((labels[int(i)], float(row[i])) for i in order), heatmap=maps[index], layer=layer,
            overlay_png=overlay_png(pictures[index], maps[index]), pooled=pooled[index],
        ))
    return explanations


def explain_arrays(model, labels: list[str], batch: np.ndarray, pictures, shown: list[str],
                   class_name: str | None = None) -> list[Explanation]:
    """Explanations of prepared images (`prediction.prepare_images`), with the pictures to draw on.

    Raises:
        InputError: `class_name` is not one of the labels.
    """
    chosen = None
    if class_name is not None:
        if class_name not in labels:
            raise InputError(f"there is no class {class_name!r} to explain; the model's classes are {', '.join(labels)}.")
        chosen = [labels.index(class_name)] * len(batch)
    maps, probabilities, pooled, layer = grad_cam(model, batch, chosen)
    return _build(shown, labels, maps, probabilities, pooled, layer, chosen, pictures)


# ----------------------------------------------------------------- kept in the run folder


def _cache_key(run_dir: pathlib.Path, file: str, class_name: str | None) -> str | None:
    try:
        picture, model = os.stat(file), os.stat(run_dir / run_folder.MODEL_FILE)
    except OSError:
        return None
    text = f"{os.path.abspath(file)}|{picture.st_size}|{picture.st_mtime_ns}|{model.st_size}|{model.st_mtime_ns}|{class_name}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _read_kept(folder: pathlib.Path, key: str, file: str) -> Explanation | None:
    try:
        facts = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        png = (folder / f"{key}.png").read_bytes()
        return Explanation(
            file=file, predicted=facts["predicted"], probability=facts["probability"], explained=facts["explained"],
            top=tuple((name, value) for name, value in facts["top"]), heatmap=np.asarray(facts["heatmap"], "float32"),
            layer=facts["layer"], overlay_png=png, path=str(folder / f"{key}.png"),
            pooled=np.asarray(facts["pooled"], "float32") if facts.get("pooled") is not None else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(folder: pathlib.Path, key: str, explanation: Explanation) -> Explanation:
    folder.mkdir(parents=True, exist_ok=True)
    facts = {"predicted": explanation.predicted, "probability": explanation.probability,
             "explained": explanation.explained, "top": [list(item) for item in explanation.top],
             "heatmap": np.round(explanation.heatmap, 4).tolist(), "layer": explanation.layer,
             "pooled": None if explanation.pooled is None else np.round(explanation.pooled, 5).tolist()}
    target = folder / f"{key}.png"
    temporary = folder / f".{key}.{os.getpid()}.tmp"
    temporary.write_bytes(explanation.overlay_png)
    os.replace(temporary, target)
    run_folder.write_json_atomic(folder / f"{key}.json", facts)  # written last: its presence says both are complete
    return dataclasses.replace(explanation, path=str(target))


def kept_explanations(run_dir, files: list[str], class_name: str | None = None) -> dict[str, Explanation]:
    """The explanations already kept in the run folder for these files ({file: explanation}); reads no model."""
    path = pathlib.Path(run_dir)
    folder = path / EXPLANATIONS_DIR
    found = {}
    for file in files:
        key = _cache_key(path, str(file), class_name)
        kept = _read_kept(folder, key, str(file)) if key else None
        if kept is not None:
            found[str(file)] = kept
    return found


def explain_files(run_dir, files: list, class_name: str | None = None, model=None, labels=None,
                  with_doubt: bool = False) -> list[Explanation]:
    """Heatmaps of where a run's model looked in each picture file; kept in the run folder for next time.

    Args:
        run_dir: a run folder with a model.
        files: picture files, any format the audit accepts.
        class_name: explain this class for every picture (e.g. the true one,
            to see why the model did not say it); default: the predicted class.
        model, labels: the run's model and labels when the caller has loaded
            them (`load_run_model`); loaded here otherwise, only if a heatmap is missing.
        with_doubt: also say whether each picture looks like none of the
            classes (`tlcore.results.doubt`; loads the model).

    Returns:
        One `Explanation` per file, in order, each with `path` where its overlay is kept.

    Raises:
        InputError: a file is missing or not a picture, the run has no model, or the class is unknown.

    Example:
        for item in explain_files(run_dir, ["cat.jpg"]):
            print(item.predicted, item.probability, item.peak(), item.path)
    """
    from tlcore.data import images
    from tlcore.results.prediction import load_run_model, prepare_images

    if not files:
        raise InputError("no pictures given; name one or more picture files to explain.")
    path = run_folder.require_run_dir(run_dir)
    files = [str(file) for file in files]
    found = kept_explanations(path, files, class_name)
    missing = [file for file in files if file not in found]
    if missing:
        if model is None:
            model, labels = load_run_model(path)
        batch = prepare_images(missing, model.input_shape[1])
        pictures = [images.load_rgb(file, preview=True) for file in missing]
        for file, made in zip(missing, explain_arrays(model, labels, batch, pictures, missing, class_name), strict=True):
            key = _cache_key(path, file, class_name)
            found[file] = _keep(path / EXPLANATIONS_DIR, key, made) if key else made
    explanations = [found[file] for file in files]
    if with_doubt:
        if model is None:
            model, labels = load_run_model(path)
        explanations = with_doubts(path, model, labels, explanations)
    return explanations


def with_doubts(run_dir, model, labels: list[str], explanations: list[Explanation]) -> list[Explanation]:
    """The explanations with the doubt rule's verdict attached (unchanged when the run has no reference)."""
    from tlcore.results import doubt as doubt_rule
    from tlcore.results.prediction import doubt_reference

    reference = doubt_reference(run_dir, model, labels)
    usable = [item for item in explanations if item.pooled is not None]
    if reference is None or len(usable) != len(explanations):
        return explanations
    verdicts = doubt_rule.assess(*reference, np.stack([item.pooled for item in explanations]))
    return [dataclasses.replace(item, doubt=verdict) for item, verdict in zip(explanations, verdicts, strict=True)]


def explain_bytes(run_dir, model, labels: list[str], data: bytes, name: str = "upload") -> Explanation:
    """Explain one uploaded picture given as bytes (the app's upload and camera), with the doubt rule's verdict.

    Nothing is kept: the upload is decoded from a temporary file that is removed.

    Raises:
        InputError: the bytes are not a picture.
    """
    import tempfile

    from tlcore.data import images
    from tlcore.results.prediction import prepare_images

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "upload"
        path.write_bytes(data)
        batch = prepare_images([path], model.input_shape[1], shown=[name])  # messages name the upload, not the file
        picture = images.load_rgb(path, preview=True)
    made = explain_arrays(model, labels, batch, [picture], [name])
    return with_doubts(run_dir, model, labels, made)[0]


def write_explanations(run_dir, files: list, out: str | os.PathLike, class_name: str | None = None) -> list[Explanation]:
    """`explain_files` with the doubt rule, each overlay written as `OUT/<picture name>.heatmap.png` (`tlcore explain`).

    Returns:
        The explanations, each with `path` set to the PNG written.

    Raises:
        InputError: as `explain_files`; or `out` cannot be written.
    """
    folder = pathlib.Path(out).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot make the output folder {str(out)!r} ({error.strerror or error}); give a folder you can write to.") from None
    written, taken = [], set()
    for item in explain_files(run_dir, files, class_name, with_doubt=True):
        stem = pathlib.Path(item.file).stem or "picture"
        name, number = f"{stem}.heatmap.png", 2
        while name in taken:
            name, number = f"{stem}-{number}.heatmap.png", number + 1
        taken.add(name)
        (folder / name).write_bytes(item.overlay_png)
        written.append(dataclasses.replace(item, path=str(folder / name)))
    return written
