"""Drawing one demo picture: a shape on a photo-like background, planned from a random generator.

Used by `tlcore.data.demo`; imports only numpy and Pillow.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tlcore.errors import InputError

DEMO_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")


# Shapes are drawn this many times larger and then averaged down, which gives
# smooth anti-aliased edges like a photo instead of jagged pixel stairs.
SUPERSAMPLING = 4


# One palette for every class: the fill colour must not tell the class apart.
FILL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),  # red
    (245, 140, 20),  # orange
    (240, 210, 30),  # yellow
    (40, 160, 60),  # green
    (40, 90, 210),  # blue
    (130, 60, 180),  # purple
    (235, 100, 170),  # pink
    (120, 75, 35),  # brown
    (25, 25, 25),  # black
    (245, 245, 245),  # white
)


# How far apart (Euclidean RGB) the shape and its background must be, so every
# shape stays visible to a person looking at the picture.
MINIMUM_CONTRAST = 130.0


BACKGROUND_KINDS = ("solid", "gradient", "texture")


# A regular pentagram has 0.38; a slightly fatter star stays recognisable when
# it is drawn small or as an outline.
STAR_INNER_RADIUS = 0.42


CIRCLE_VERTEX_COUNT = 90


@dataclasses.dataclass(frozen=True)
class ScenePlan:
    """Every random decision behind one demo image, drawn before any pixel is.

    Keeping the decisions apart from the drawing means `plan_scene` is the only
    place where the class may influence anything, and there it picks only the
    shape. Sizes are fractions of the image side, so one plan draws the same
    scene at any image size.
    """

    shape: str
    fill_colour: tuple[int, int, int]
    size_fraction: float  # longest side of the shape's bounding box / image side
    rotation_degrees: float
    position: tuple[float, float]  # 0..1 within the room left beside the shape
    filled: bool
    outline_fraction: float  # outline width / shape size, when not filled
    background_kind: str
    background_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    background_angle_degrees: float
    texture_cells: int
    shading_strength: float
    shading_angle_degrees: float
    shadow_offset: tuple[float, float] | None
    grain_sigma: float
    blur_fraction: float
    noise_seed: int


def plan_scene(rng: np.random.Generator, shape: str) -> ScenePlan:
    """Make every random decision for one image of `shape`.

    Args:
        rng: Source of randomness for this one image.
        shape: One of `DEMO_CLASSES`; the only thing the class decides.

    Returns:
        The plan, ready for `render_scene`.
    """
    fill_colour = FILL_PALETTE[rng.integers(len(FILL_PALETTE))]
    filled = bool(rng.random() < 0.5)
    outline_fraction = float(rng.uniform(0.07, 0.12))
    background_kind = BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))]
    background_colours = (
        _contrasting_colour(rng, fill_colour),
        _contrasting_colour(rng, fill_colour),
    )
    shadow_offset = None
    if rng.random() < 0.4:
        shadow_offset = (float(rng.uniform(-0.04, 0.04)), float(rng.uniform(0.01, 0.05)))
    return ScenePlan(
        shape=shape,
        fill_colour=fill_colour,
        size_fraction=float(rng.uniform(0.30, 0.70)),
        rotation_degrees=float(rng.uniform(0.0, 360.0)),
        position=(float(rng.random()), float(rng.random())),
        filled=filled,
        outline_fraction=outline_fraction,
        background_kind=background_kind,
        background_colours=background_colours,
        background_angle_degrees=float(rng.uniform(0.0, 360.0)),
        texture_cells=int(rng.integers(3, 9)),
        shading_strength=float(rng.uniform(0.0, 0.15)),
        shading_angle_degrees=float(rng.uniform(0.0, 360.0)),
        shadow_offset=shadow_offset,
        grain_sigma=float(rng.uniform(3.0, 9.0)) if rng.random() < 0.3 else 0.0,
        blur_fraction=float(rng.uniform(0.003, 0.008)) if rng.random() < 0.25 else 0.0,
        noise_seed=int(rng.integers(2**32)),
    )


def render_scene(plan: ScenePlan, image_size: int) -> Image.Image:
    """Draw a planned scene as an RGB image of `image_size` x `image_size` pixels.

    Args:
        plan: Decisions from `plan_scene`.
        image_size: Side of the square image in pixels.

    Returns:
        The finished RGB image.
    """
    noise_rng = np.random.default_rng(plan.noise_seed)
    background = _draw_background(plan, image_size, noise_rng)
    corners = _place_shape(plan, image_size)
    coverage = _shape_coverage(corners, plan, image_size)
    if plan.shadow_offset is not None:
        background = _cast_shadow(background, corners, plan, image_size)
    fill = _shaded_fill(plan, image_size)
    scene = background * (1.0 - coverage[..., None]) + fill * coverage[..., None]
    return _finish_like_a_photo(scene, plan, image_size, noise_rng)


def shape_outline(shape: str) -> np.ndarray:
    """Corners of `shape` around the origin, before rotation and scaling.

    Args:
        shape: One of `DEMO_CLASSES`.

    Returns:
        Array of shape (corner_count, 2) with x, y in about -1..1, the first
        corner pointing up.

    Raises:
        InputError: `shape` is not one of `DEMO_CLASSES`.
    """
    if shape == "circle":
        return _regular_polygon(CIRCLE_VERTEX_COUNT)
    if shape == "square":
        return _regular_polygon(4, start_degrees=45.0)
    if shape == "triangle":
        return _regular_polygon(3)
    if shape == "star":
        radii = np.tile([1.0, STAR_INNER_RADIUS], 5)
        return _regular_polygon(10) * radii[:, None]
    raise InputError(f"Unknown demo shape {shape!r}; expected one of {DEMO_CLASSES}.")


def _contrasting_colour(rng: np.random.Generator, fill_colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """A natural-looking background colour far enough from the shape to see it.

    Redrawn until it contrasts; the fill colour is class-blind, so the result is
    too. Falls back to black or white, whichever is farther, if luck runs out.
    """
    for _ in range(100):
        red, green, blue = colorsys.hsv_to_rgb(
            rng.random(), rng.uniform(0.0, 0.7), rng.uniform(0.2, 1.0)
        )
        candidate = (round(red * 255), round(green * 255), round(blue * 255))
        if _colour_distance(candidate, fill_colour) >= MINIMUM_CONTRAST:
            return candidate
    black, white = (0, 0, 0), (255, 255, 255)
    if _colour_distance(black, fill_colour) > _colour_distance(white, fill_colour):
        return black
    return white


def _colour_distance(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
    """Euclidean distance between two RGB colours."""
    return float(np.linalg.norm(np.subtract(first, second, dtype=float)))


def _draw_background(plan: ScenePlan, image_size: int, noise_rng: np.random.Generator) -> np.ndarray:
    """The scene behind the shape: a solid colour, a linear gradient, or a blotchy texture.

    Returns a float array (image_size, image_size, 3) in 0..255.
    """
    first, second = (np.array(colour, dtype=float) for colour in plan.background_colours)
    if plan.background_kind == "solid":
        blend = np.zeros((image_size, image_size))
    elif plan.background_kind == "gradient":
        blend = _linear_ramp(image_size, plan.background_angle_degrees)
    else:
        blend = _blotchy_texture(image_size, plan.texture_cells, noise_rng)
    background = first + (second - first) * blend[..., None]
    if plan.background_kind == "texture":
        background += noise_rng.normal(0.0, 6.0, size=background.shape)
    return background


def _linear_ramp(image_size: int, angle_degrees: float) -> np.ndarray:
    """Values rising from 0 to 1 across the image in the direction `angle_degrees`."""
    angle = math.radians(angle_degrees)
    coordinates = np.linspace(-0.5, 0.5, image_size)
    along = coordinates[None, :] * math.cos(angle) + coordinates[:, None] * math.sin(angle)
    return (along - along.min()) / (along.max() - along.min())


def _blotchy_texture(image_size: int, cells: int, noise_rng: np.random.Generator) -> np.ndarray:
    """Smooth random blotches in 0..1, like a mottled wall or a cloudy sky.

    A small grid of random values is enlarged with bicubic smoothing, which is
    much cheaper than filtering full-size noise.
    """
    coarse = (noise_rng.random((cells, cells)) * 255).astype(np.uint8)
    enlarged = Image.fromarray(coarse).resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(enlarged, dtype=float) / 255.0


def _regular_polygon(corner_count: int, start_degrees: float = 0.0) -> np.ndarray:
    """Corners of a regular polygon on the unit circle, the first at the top."""
    angles = np.radians(start_degrees + np.arange(corner_count) * 360.0 / corner_count)
    # Image y grows downwards, so "up" is negative y.
    return np.stack([np.sin(angles), -np.cos(angles)], axis=1)


def _place_shape(plan: ScenePlan, image_size: int) -> np.ndarray:
    """Rotate, scale and move the shape's corners into image pixel coordinates.

    The shape is scaled so that the longest side of its rotated bounding box
    (outline stroke included) is `size_fraction` of the image, then placed
    anywhere it fits whole inside a small margin.
    """
    angle = math.radians(plan.rotation_degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = shape_outline(plan.shape) @ rotation.T
    corners -= (corners.min(axis=0) + corners.max(axis=0)) / 2.0
    extent = (corners.max(axis=0) - corners.min(axis=0)).max()
    corners *= plan.size_fraction * image_size / extent
    half_box = corners.max(axis=0) + _outline_width(plan, image_size) / 2.0
    margin = 0.03 * image_size
    lowest_centre = margin + half_box
    highest_centre = image_size - margin - half_box
    centre = lowest_centre + (highest_centre - lowest_centre) * np.array(plan.position)
    return corners + centre


def _outline_width(plan: ScenePlan, image_size: int) -> float:
    """Stroke width in pixels for an outlined shape, never thinner than 2 pixels."""
    if plan.filled:
        return 0.0
    return max(2.0, plan.outline_fraction * plan.size_fraction * image_size)


def _shape_coverage(corners: np.ndarray, plan: ScenePlan, image_size: int) -> np.ndarray:
    """How much of each pixel the shape covers, 0..1, with anti-aliased edges.

    Drawn `SUPERSAMPLING` times larger and box-averaged down.
    """
    large_size = image_size * SUPERSAMPLING
    large_corners = [tuple(point) for point in corners * SUPERSAMPLING]
    mask = Image.new("L", (large_size, large_size), 0)
    pen = ImageDraw.Draw(mask)
    if plan.filled:
        pen.polygon(large_corners, fill=255)
    else:
        stroke = round(_outline_width(plan, image_size) * SUPERSAMPLING)
        # Repeating the first two corners closes the loop with a rounded joint.
        pen.line(large_corners + large_corners[:2], fill=255, width=stroke, joint="curve")
    small = mask.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(small, dtype=float) / 255.0


def _cast_shadow(background: np.ndarray, corners: np.ndarray, plan: ScenePlan, image_size: int) -> np.ndarray:
    """Darken the background under a soft, offset copy of the shape, as under a lamp."""
    offset = np.array(plan.shadow_offset) * image_size
    shadow_mask = _shape_coverage(corners + offset, plan, image_size)
    softened = Image.fromarray((shadow_mask * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(radius=0.02 * image_size)
    )
    darkness = 0.45 * np.asarray(softened, dtype=float)[..., None] / 255.0
    return background * (1.0 - darkness)


def _shaded_fill(plan: ScenePlan, image_size: int) -> np.ndarray:
    """The shape's colour, a little brighter on one side, as if lit from there."""
    ramp = _linear_ramp(image_size, plan.shading_angle_degrees) - 0.5
    brightness = 1.0 + 2.0 * plan.shading_strength * ramp
    return np.array(plan.fill_colour, dtype=float) * brightness[..., None]


def _finish_like_a_photo(
    scene: np.ndarray, plan: ScenePlan, image_size: int, noise_rng: np.random.Generator
) -> Image.Image:
    """Add the occasional sensor grain and slight blur, then convert to an 8-bit image."""
    if plan.grain_sigma > 0.0:
        scene = scene + noise_rng.normal(0.0, plan.grain_sigma, size=scene.shape)
    image = Image.fromarray(np.clip(np.rint(scene), 0, 255).astype(np.uint8))
    if plan.blur_fraction > 0.0:
        image = image.filter(ImageFilter.GaussianBlur(radius=plan.blur_fraction * image_size))
    return image
