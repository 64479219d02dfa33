"""The table of pretrained Keras applications a user can fine-tune.

One row per backbone holds everything the rest of tlcore and the app need to know
about it: how to build it, what size it expects, how it wants its pixels scaled,
how big and how accurate it is, how its layers group into blocks, and which file
Keras keeps its ImageNet weights in. Keeping this in one table (as fastai does)
means adding a backbone is adding a row.

Building a backbone imports Keras; reading the table does not, so the Streamlit
server and `tlcore backbones` stay fast.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
from dataclasses import dataclass, field

from tlcore import paths
from tlcore.errors import InputError, WeightsUnavailableError

DEFAULT_BACKBONE = "mobilenetv2_035"
DOWNLOAD_TIMEOUT_S = 30
# Keras downloads weights with urllib and no timeout, so a network that drops
# packets (a classroom firewall) would leave training waiting forever. This
# bounds each connect and each read; a slow but working download still finishes.
WEIGHTS_SERVER = "https://storage.googleapis.com/"  # where keras.applications download their weights from
REACHABLE_TIMEOUT_S = 3.0  # how long asking whether that server answers may take
OFFLINE_ENV_VAR = "TLCORE_OFFLINE"  # set to 1: never ask the network (a school without internet; the tests)
WEIGHTS_FILE_OVERHEAD_MB = 0.4  # an .h5 weights file's names and tables, beyond 4 bytes a parameter


@dataclass(frozen=True)
class BlockRule:
    """How layer names map to block names for one architecture.

    Args:
        pattern: a regular expression with one group; a layer whose name matches
            starts (or continues) the block named by that group.
        mode: "following" means a layer whose name does not match belongs to the
            block of the nearest matching layer before it (MobileNetV2, ResNet);
            "preceding" means it belongs to the next matching layer after it
            (InceptionV3, whose blocks are named only by their final `mixedN`).
        top_pattern: layers after the last block that form the backbone's final
            convolution (MobileNetV2's `Conv_1`); grouped as the block "top".
        name_format: turns the matched group into the block name ("block_{}").
    """

    pattern: str
    mode: str = "following"
    top_pattern: str | None = None
    name_format: str = "{}"


@dataclass(frozen=True)
class BackboneSpec:
    """Everything tlcore knows about one Keras application.

    Args:
        name: the name users type (`--backbone mobilenetv2_035`).
        title: a human name for tables.
        constructor: attribute of `keras.applications` that builds it.
        constructor_kwargs: extra arguments (e.g. `alpha`).
        input_size: the native square input size in pixels.
        min_input_size: the smallest size the architecture accepts.
        preprocessing: how raw 0-255 RGB is scaled before the backbone:
            "tf" (to -1..1), "caffe" (BGR minus ImageNet mean), "torch"
            (0..1 then ImageNet mean/std), or "none" (the application already
            contains its own rescaling layers).
        params: parameters of the backbone without its ImageNet classifier.
        imagenet_top1: ImageNet top-1 accuracy in percent (Keras documentation;
            for reduced-width MobileNets, the published table for that width).
        weights_file: the file name Keras caches the no-top ImageNet weights
            under; `{size}` is replaced by the input size where Keras keeps one
            file per size.
        weights_sizes: sizes that have their own weights file (others use 224).
        speed_hint: plain-language hint shown in the app.
        block_rule: how the backbone's layers group into blocks.
        preset_rank: where the presets rank it among the backbones they may pick
            on their own (1 is the strongest: the highest ImageNet top-1); None
            for a backbone they never pick (its time estimate was not checked
            on a real run). A backbone picked by hand is used whatever its rank.
    """

    name: str
    title: str
    constructor: str
    input_size: int
    min_input_size: int
    preprocessing: str
    params: int
    imagenet_top1: float
    weights_file: str
    speed_hint: str
    block_rule: BlockRule
    constructor_kwargs: dict = field(default_factory=dict)
    weights_sizes: tuple[int, ...] = ()
    preset_rank: int | None = None

    @property
    def download_mb(self) -> float:
        """About how many megabytes its no-top ImageNet weights file is: 4 bytes a parameter and the file's own
        tables (9.4 MB for MobileNetV2's 2.26 million parameters, 2.0 MB for width 0.35's 0.41 million)."""
        return round(self.params * 4 / 1e6 + WEIGHTS_FILE_OVERHEAD_MB, 1)

    def weights_file_for(self, image_size: int) -> str:
        """The cache file name Keras would look for at this image size."""
        size = image_size if image_size in self.weights_sizes else 224
        return self.weights_file.format(size=size)

    def summary(self) -> dict:
        """A JSON-friendly row for tables and `tlcore backbones --json`."""
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "imagenet_top1": self.imagenet_top1,
            "input_size": self.input_size,
            "min_input_size": self.min_input_size,
            "speed_hint": self.speed_hint,
            "weights_file": self.weights_file_for(self.input_size),
            "available_offline": weights_available_offline(self.name),
            "download_mb": self.download_mb,
            "preset_rank": self.preset_rank,
        }


_MOBILENET_V2_RULE = BlockRule(
    pattern=r"^(block_\d+)_|^(expanded_conv)_",
    top_pattern=r"^(Conv_1|Conv_1_bn|out_relu)$",
)
_EFFICIENTNET_RULE = BlockRule(pattern=r"^(block\d+[a-z])_", top_pattern=r"^top_")
_MOBILENET_V3_RULE = BlockRule(
    pattern=r"^(expanded_conv(?:_\d+)?)_", top_pattern=r"^conv_1(_bn)?$|^activation(_\d+)?$"
)

_SPECS = (
    BackboneSpec(
        name="mobilenet_025",
        title="MobileNet (width 0.25)",
        constructor="MobileNet",
        constructor_kwargs={"alpha": 0.25},
        input_size=224,
        min_input_size=32,
        preprocessing="tf",
        params=218_544,
        imagenet_top1=49.8,
        weights_file="mobilenet_2_5_{size}_tf_no_top.h5",
        weights_sizes=(128, 160, 192, 224),
        speed_hint="fastest",
        block_rule=BlockRule(pattern=r"^conv_(?:dw|pw|pad)_(\d+)", name_format="block_{}"),
        preset_rank=3,
    ),
    BackboneSpec(
        name="mobilenetv2_035",
        title="MobileNetV2 (width 0.35)",
        constructor="MobileNetV2",
        constructor_kwargs={"alpha": 0.35},
        input_size=224,
        min_input_size=32,
        preprocessing="tf",
        params=410_208,
        imagenet_top1=60.3,
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5",
        weights_sizes=(96, 128, 160, 192, 224),
        speed_hint="fast",
        block_rule=_MOBILENET_V2_RULE,
        preset_rank=2,
    ),
    BackboneSpec(
        name="mobilenetv2_100",
        title="MobileNetV2",
        constructor="MobileNetV2",
        constructor_kwargs={"alpha": 1.0},
        input_size=224,
        min_input_size=32,
        preprocessing="tf",
        params=2_257_984,
        imagenet_top1=71.3,
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        weights_sizes=(96, 128, 160, 192, 224),
        speed_hint="fast",
        block_rule=_MOBILENET_V2_RULE,
        preset_rank=1,
    ),
    BackboneSpec(
        name="mobilenetv3_small",
        title="MobileNetV3 Small",
        constructor="MobileNetV3Small",
        input_size=224,
        min_input_size=32,
        preprocessing="none",
        params=939_120,
        imagenet_top1=68.1,
        weights_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        speed_hint="fastest",
        block_rule=_MOBILENET_V3_RULE,
    ),
    BackboneSpec(
        name="mobilenetv3_large",
        title="MobileNetV3 Large",
        constructor="MobileNetV3Large",
        input_size=224,
        min_input_size=32,
        preprocessing="none",
        params=2_996_352,
        imagenet_top1=75.6,
        weights_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        speed_hint="fast",
        block_rule=_MOBILENET_V3_RULE,
    ),
    BackboneSpec(
        name="efficientnetb0",
        title="EfficientNetB0",
        constructor="EfficientNetB0",
        input_size=224,
        min_input_size=32,
        preprocessing="none",
        params=4_049_571,
        imagenet_top1=77.1,
        weights_file="efficientnetb0_notop.h5",
        speed_hint="balanced",
        block_rule=_EFFICIENTNET_RULE,
    ),
    BackboneSpec(
        name="efficientnetv2b0",
        title="EfficientNetV2B0",
        constructor="EfficientNetV2B0",
        input_size=224,
        min_input_size=32,
        preprocessing="none",
        params=5_919_312,
        imagenet_top1=78.7,
        weights_file="efficientnetv2-b0_notop.h5",
        speed_hint="balanced",
        block_rule=_EFFICIENTNET_RULE,
    ),
    BackboneSpec(
        name="resnet50",
        title="ResNet50",
        constructor="ResNet50",
        input_size=224,
        min_input_size=32,
        preprocessing="caffe",
        params=23_587_712,
        imagenet_top1=74.9,
        weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        speed_hint="accurate, slower",
        block_rule=BlockRule(pattern=r"^(conv\d_block\d+)_"),
    ),
    BackboneSpec(
        name="vgg16",
        title="VGG16",
        constructor="VGG16",
        input_size=224,
        min_input_size=32,
        preprocessing="caffe",
        params=14_714_688,
        imagenet_top1=71.3,
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        speed_hint="slow",
        block_rule=BlockRule(pattern=r"^(block\d)_"),
    ),
    BackboneSpec(
        name="inceptionv3",
        title="InceptionV3",
        constructor="InceptionV3",
        input_size=299,
        min_input_size=75,
        preprocessing="tf",
        params=21_802_784,
        imagenet_top1=77.9,
        weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        speed_hint="accurate, slower",
        block_rule=BlockRule(pattern=r"^(mixed\d+)$", mode="preceding"),
    ),
    BackboneSpec(
        name="xception",
        title="Xception",
        constructor="Xception",
        input_size=299,
        min_input_size=71,
        preprocessing="tf",
        params=20_861_480,
        imagenet_top1=79.0,
        weights_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        speed_hint="accurate, slower",
        block_rule=BlockRule(pattern=r"^(block\d+)_"),
    ),
    BackboneSpec(
        name="densenet121",
        title="DenseNet121",
        constructor="DenseNet121",
        input_size=224,
        min_input_size=32,
        preprocessing="torch",
        params=7_037_504,
        imagenet_top1=75.0,
        weights_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        speed_hint="balanced",
        block_rule=BlockRule(pattern=r"^(conv\d_block\d+)_|^(pool\d)_", top_pattern=r"^(bn|relu)$"),
    ),
    BackboneSpec(
        name="convnext_tiny",
        title="ConvNeXtTiny",
        constructor="ConvNeXtTiny",
        input_size=224,
        min_input_size=32,
        preprocessing="none",
        params=27_820_128,
        imagenet_top1=81.3,
        weights_file="convnext_tiny_notop.h5",
        speed_hint="most accurate, slowest",
        block_rule=BlockRule(
            pattern=r"^convnext_tiny_(stage_\d_block_\d+)_|^convnext_tiny_(downsampling_block_\d+)",
            top_pattern=r"^layer_normalization(_\d+)?$",
        ),
    ),
)

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in _SPECS}


def get_backbone(name: str) -> BackboneSpec:
    """Look a backbone up by name.

    Raises:
        InputError: the name is not in the table; the message lists the choices.
    """
    try:
        return BACKBONES[name]
    except KeyError:
        choices = ", ".join(BACKBONES)
        raise InputError(
            f"unknown backbone {name!r}; expected one of: {choices}. "
            "Run `tlcore backbones` to see them with their size and accuracy."
        ) from None


def list_backbones() -> list[dict]:
    """Every backbone as a JSON-friendly row (name, params, accuracy, ...)."""
    return [spec.summary() for spec in _SPECS]


def keras_cache_dir() -> pathlib.Path:
    """Where Keras caches downloaded weights (`$KERAS_HOME/models`): shared by everyone on this computer."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(keras_home) / "models"


def own_weights_dir() -> pathlib.Path:
    """Where the current user's imported weights are kept (`<their space>/weights`): used for their runs only.

    In classroom mode each student's imports stay here, so a file one student
    brings can never change what another student's runs start from; only a
    teacher (or the operator) installs a verified file for everyone, in
    `keras_cache_dir()`. In personal mode this is `$TLCORE_HOME/weights`.
    """
    return paths.own_weights_dir()


def cached_weights_path(name: str, image_size: int | None = None) -> pathlib.Path | None:
    """The ImageNet weights file a run of the current user would load for a backbone, if there is one.

    The user's own imported file comes first, then the one shared by everyone
    (the Keras cache). A size without its own file falls back to the 224-pixel
    file, exactly as Keras does: convolution weights do not depend on the input size.
    """
    spec = get_backbone(name)
    size = image_size or spec.input_size
    for folder in (own_weights_dir(), keras_cache_dir()):
        for file_name in dict.fromkeys([spec.weights_file_for(size), spec.weights_file_for(224)]):
            path = folder / file_name
            if path.is_file() and path.stat().st_size > 0:
                return path
    return None


def weights_available_offline(name: str) -> bool:
    """True when the backbone's ImageNet weights are in the Keras cache."""
    return cached_weights_path(name) is not None


def weights_server_reachable(timeout_s: float = REACHABLE_TIMEOUT_S) -> bool:
    """True when the server Keras downloads ImageNet weights from answers (through any proxy set), within `timeout_s`."""
    import urllib.error
    import urllib.request

    if os.environ.get(OFFLINE_ENV_VAR, "").strip() not in ("", "0"):
        return False
    try:
        with urllib.request.urlopen(urllib.request.Request(WEIGHTS_SERVER, method="HEAD"), timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only with a refusal of the bare address
    except (OSError, ValueError):
        return False


def weights_missing_message(name: str, image_size: int | None = None) -> str:
    """The one-line explanation shown when weights cannot be had."""
    spec = get_backbone(name)
    file_name = spec.weights_file_for(image_size or spec.input_size)
    return (
        f"the ImageNet weights for backbone {name!r} are not on this machine and could not be "
        f"downloaded; Keras expects the file {file_name} in {keras_cache_dir()}. "
        f"Get that file on a machine with internet and run `tlcore weights import {file_name}`, "
        "or pick a backbone marked available offline (`tlcore backbones`)."
    )


def build_backbone(name: str, image_size: int, weights: str | None = "imagenet"):
    """Build a backbone without its ImageNet classifier.

    Args:
        name: a backbone name from the table.
        image_size: square input size in pixels.
        weights: "imagenet" to load pretrained weights (from the Keras cache,
            else by Keras's normal download), or None for random weights
            (tests, and training from scratch).

    Returns:
        A `keras.Model` from raw scaled pixels to the last feature map.

    Raises:
        InputError: unknown backbone, or an image size the backbone cannot take.
        WeightsUnavailableError: weights neither cached nor downloadable.
    """
    spec = get_backbone(name)
    validate_image_size(spec, image_size)
    if weights not in ("imagenet", None):
        raise InputError(f"weights must be 'imagenet' or None, got {weights!r}")
    cached = cached_weights_path(name, image_size) if weights == "imagenet" else None
    if cached is not None:
        _check_cached_file_is_trained(cached, name)
    import keras

    constructor = getattr(keras.applications, spec.constructor)
    kwargs = dict(spec.constructor_kwargs, include_top=False, input_shape=(image_size, image_size, 3))
    if weights is None:
        return constructor(weights=None, **kwargs)
    if cached is not None:
        backbone = constructor(weights=None, **kwargs)
        try:
            backbone.load_weights(str(cached))
        except Exception as error:  # h5py/Keras raise plain errors for a damaged or foreign file
            raise WeightsUnavailableError(
                f"the cached ImageNet weights file {cached} for backbone {name!r} is damaged or is not for this "
                f"backbone ({type(error).__name__}); get a good copy of {cached.name} and run "
                f"`tlcore weights import {cached.name}`, which replaces it."
            ) from error
        return backbone
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return constructor(weights="imagenet", **kwargs)
    except Exception as error:  # Keras raises plain Exceptions for failed downloads
        raise WeightsUnavailableError(weights_missing_message(name, image_size)) from error


def _check_cached_file_is_trained(cached: pathlib.Path, name: str) -> None:
    """Refuse to start from a file that holds untrained weights (one planted before imports were checked)."""
    from tlcore.model.weights_check import check_trained

    try:
        check_trained(cached, name)
    except InputError as error:
        whose = "your own imported weights" if cached.parent == own_weights_dir() else "the weights shared by everyone"
        raise WeightsUnavailableError(
            f"{error} It is kept as {cached.name} in {whose}; ask the operator to remove it, then import a good copy."
        ) from None


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """Give sockets opened without a timeout (urllib's) this one, for the duration."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def validate_image_size(spec: BackboneSpec, image_size: int) -> None:
    """Reject sizes the architecture cannot take, with the allowed range."""
    if not isinstance(image_size, int) or image_size < spec.min_input_size or image_size > 1024:
        raise InputError(
            f"image size {image_size!r} does not work with backbone {spec.name!r}; expected a whole "
            f"number of pixels from {spec.min_input_size} to 1024 (its native size is {spec.input_size})."
        )


def spec_for_weights_file(file_name: str, backbone: str | None) -> tuple[BackboneSpec, int]:
    """Find which backbone (and size) a Keras weights file name belongs to."""
    candidates = [get_backbone(backbone)] if backbone else list(_SPECS)
    for spec in candidates:
        for size in spec.weights_sizes or (224,):
            if spec.weights_file_for(size) == file_name:
                return spec, size
    if backbone:
        return get_backbone(backbone), get_backbone(backbone).input_size
    raise InputError(
        f"cannot tell which backbone the file {file_name!r} is for; keep the file name Keras uses "
        "(see `tlcore backbones`) or add `--backbone NAME`."
    )
