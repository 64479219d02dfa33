"""Pictures decoded once in the background, read batch by batch as soon as each is ready."""

import threading

import numpy as np
import pytest

from tlcore.training import pipeline


class HeldDecoding(pipeline.BackgroundDecoding):
    """Decodes its first batch, then waits until the test lets it go on."""

    go_on = None

    def _batches(self, file_paths, image_size, batch_size):
        for index, batch in enumerate(super()._batches(file_paths, image_size, batch_size)):
            if index == 1:
                self.go_on.wait(30)
            yield batch


def test_the_first_batch_can_be_read_before_the_rest_is_decoded(tiny_dataset):
    files = sorted(str(path) for path in tiny_dataset.rglob("*.*"))
    HeldDecoding.go_on = threading.Event()
    decoding = HeldDecoding(files, image_size=16, batch_size=4)

    assert decoding.wait_until(4)
    assert decoding.decoded == 4 < len(files), "the rest waits"
    first = decoding.images[:4].copy()
    HeldDecoding.go_on.set()
    assert decoding.wait_until(len(files))

    everything = pipeline.BackgroundDecoding(files, image_size=16, batch_size=4)
    assert everything.wait_until(len(files))
    np.testing.assert_array_equal(everything.images, decoding.images)
    np.testing.assert_array_equal(first, everything.images[:4])


def test_a_stopped_decoding_says_so_instead_of_waiting(tiny_dataset):
    files = sorted(str(path) for path in tiny_dataset.rglob("*.*"))
    HeldDecoding.go_on = threading.Event()
    decoding = HeldDecoding(files, image_size=16, batch_size=4)
    assert decoding.wait_until(4)
    decoding.stop()
    HeldDecoding.go_on.set()
    assert decoding.wait_until(len(files)) is False


def test_a_file_that_cannot_be_read_is_the_readers_error(tiny_dataset):
    files = sorted(str(path) for path in tiny_dataset.rglob("*.*")) + [str(tiny_dataset / "gone.png")]
    decoding = pipeline.BackgroundDecoding(files, image_size=16, batch_size=4)
    with pytest.raises(Exception, match="gone.png|No such file|NotFound"):
        decoding.wait_until(len(files))
