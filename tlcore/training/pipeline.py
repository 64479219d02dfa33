"""Feed images to Keras with tf.data: parallel decode, resize, cache, batch, prefetch.

The audit has already decided which files are images. Files TensorFlow decodes
exactly as Pillow would (plain JPEG, 8-bit PNG, GIF) are read directly; the rest
(TIFF, WebP, HEIC, CMYK, 16-bit, EXIF-rotated photos, ...) are converted once to
PNG in a cache. Large JPEGs are decoded at a reduced scale that still covers
the model's input size (`decode_rgb`), so phone photos cost little more than
web pictures. The hot path is then pure tf.data, with no Python per image.

This is the one place tlcore talks to TensorFlow for data; the model and training
code use Keras only, so they also run on the JAX and PyTorch backends.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tlcore import paths
from tlcore.data import images
from tlcore.data.records import ImageRecord

# Resized images are kept in memory (as uint8) when they fit in this budget, so
# each file is decoded once per run rather than once per epoch.
DEFAULT_DECODE_CACHE_BYTES = 1_500_000_000


def decodable_paths(records: list[ImageRecord], image_size: int) -> list[str]:
    """Paths tf.data can decode: the originals, or cached PNG conversions (JPEGs reduced for `image_size`)."""

    def one(record: ImageRecord) -> str:
        if not record.needs_conversion:
            return record.path
        return str(images.convert_to_png(record.path, paths.converted_images_dir(), image_size=image_size))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, records))


# libjpeg's reduced decoding scales, largest first, as `tlcore.export.pictures.jpeg_reduction` chooses among them.
_JPEG_REDUCTIONS = (8, 4, 2)


def decode_rgb(raw, image_size: int | None = None):
    """Decode a file's bytes to uint8 RGB, JPEGs exactly as Pillow, OpenCV and web browsers do.

    TensorFlow decodes JPEGs with libjpeg's fast integer transform unless told
    otherwise, which differs from the accurate one everyone else uses by up to
    22 levels on real photos; a model used outside the app (tlcore.export)
    would then see other pixels than it was trained on. The accurate transform
    costs no measurable time here.

    With `image_size`, a JPEG at least twice that size on both sides is decoded
    at libjpeg's largest reduced scale (1/2, 1/4 or 1/8) that keeps both sides
    at least `image_size`: a 4,000x3,000 photo becomes 500x375 while it is
    decoded, about ten times faster than in full, and pixel for pixel what
    Pillow's `draft` gives (`tlcore.export.pictures.load_picture`).
    """
    import tensorflow as tf

    def jpeg():
        if image_size is None:
            return tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE")
        shape = tf.io.extract_jpeg_shape(raw)
        fits = tf.minimum(shape[0] // image_size, shape[1] // image_size)
        # The first scale that fits: 8, 4, 2, else 1 (full size).
        choice = tf.reduce_sum(tf.cast(fits < tf.constant(_JPEG_REDUCTIONS, tf.int32), tf.int32))
        branches = [lambda ratio=ratio: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE", ratio=ratio)
                    for ratio in (*_JPEG_REDUCTIONS, 1)]
        return tf.switch_case(choice, branches)

    image = tf.cond(
        tf.io.is_jpeg(raw),
        jpeg,
        lambda: tf.io.decode_image(raw, channels=3, expand_animations=False, dtype=tf.uint8),
    )
    image.set_shape([None, None, 3])
    return image


def decode_and_resize(path, image_size: int):
    """Read one file and return a float32 (size, size, 3) image in 0..255."""
    import tensorflow as tf

    image = decode_rgb(tf.io.read_file(path), image_size)
    # Shrinking uses area averaging (antialiased, so a 12-megapixel photo does not
    # alias at 224 px, and about twice as fast as antialiased bilinear); enlarging
    # a small image uses bilinear, which area would make blocky. The exports'
    # snippets do the same in NumPy (tlcore.export.pictures, tested pixel-equal).
    shrinking = tf.reduce_max(tf.shape(image)[:2]) > image_size
    resized = tf.cond(
        shrinking,
        lambda: tf.image.resize(image, [image_size, image_size], method="area"),
        lambda: tf.image.resize(image, [image_size, image_size], method="bilinear"),
    )
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def make_dataset(
    file_paths: list[str],
    labels: list[int] | None,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache_bytes: int = DEFAULT_DECODE_CACHE_BYTES,
):
    """A batched `tf.data.Dataset` of (image, label) pairs (or images only).

    Args:
        file_paths: files tf.data can decode (see `decodable_paths`).
        labels: integer labels in the same order, or None for images only.
        image_size: square output size.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (training), seeded.
        seed: the shuffle seed.
        cache_bytes: keep decoded images in memory when they fit in this many bytes.
    """
    import tensorflow as tf

    # Bytes, not str: a file name that is not valid UTF-8 must still load.
    dataset = tf.data.Dataset.from_tensor_slices([os.fsencode(path) for path in file_paths])
    if labels is not None:
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(np.asarray(labels, dtype="int32")))
    else:
        dataset = dataset.map(lambda path: (path,))

    def load(path, *rest):
        image = tf.cast(decode_and_resize(path, image_size), tf.uint8)
        return (image, *rest)

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if len(file_paths) * image_size * image_size * 3 <= cache_bytes:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(max(len(file_paths), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda image, *rest: (tf.cast(image, tf.float32), *rest))
    if labels is None:
        dataset = dataset.map(lambda image: image)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class BackgroundDecoding:
    """Files decoded and resized once into one uint8 array (N, size, size, 3) on a worker thread.

    Readers take the pictures as soon as they are decoded (`wait_until`), so
    the feature pass starts on the first batch instead of after the last one
    (at 8,000 pictures the first progress row used to wait 18 s for all of
    them). Parallel decoding by tf.data; uint8 keeps the array a quarter of
    float32's size, so a few thousand pictures fit comfortably in memory.
    """

    def __init__(self, file_paths: list[str], image_size: int, batch_size: int = 64):
        self.images = np.empty((len(file_paths), image_size, image_size, 3), dtype="uint8")
        self._decoded = 0
        self._finished = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._decode, args=(file_paths, image_size, batch_size),
                                        name="tlcore-decode", daemon=True)
        self._thread.start()

    def _decode(self, file_paths: list[str], image_size: int, batch_size: int) -> None:
        try:
            for batch in self._batches(file_paths, image_size, batch_size):
                if self._stop.is_set():
                    return
                end = self._decoded + len(batch)
                self.images[self._decoded : end] = batch
                with self._changed:
                    self._decoded = end
                    self._changed.notify_all()
        except BaseException as error:  # handed to the reader, who says which run failed and why
            self._error = error
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    @staticmethod
    def _batches(file_paths: list[str], image_size: int, batch_size: int):
        """uint8 numpy batches of the decoded, resized files, in order."""
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices([os.fsencode(path) for path in file_paths])
        dataset = dataset.map(
            lambda path: tf.cast(decode_and_resize(path, image_size), tf.uint8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        for batch in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
            yield batch.numpy()

    def wait_until(self, count: int) -> bool:
        """Wait until the first `count` pictures are decoded: True, or False if decoding was stopped first.

        Raises:
            The decoding's own error (a file that vanished or cannot be read).
        """
        with self._changed:
            self._changed.wait_for(lambda: self._decoded >= count or self._finished)
        if self._error is not None:
            raise self._error
        return self._decoded >= count

    def stop(self) -> None:
        """Decode no more (the pictures are not needed after all); what is decoded stays readable."""
        self._stop.set()

    @property
    def decoded(self) -> int:
        return self._decoded


def decoded_bytes(count: int, image_size: int) -> int:
    return count * image_size * image_size * 3


def load_images(file_paths: list[str], image_size: int) -> np.ndarray:
    """Decode files into one float32 array (N, size, size, 3), as training sees them."""
    dataset = make_dataset(file_paths, None, image_size, batch_size=32, cache_bytes=0)
    batches = [batch.numpy() for batch in dataset]
    if not batches:
        return np.zeros((0, image_size, image_size, 3), dtype="float32")
    return np.concatenate(batches)
