"""The incremental audit: per-file facts kept between audits, every core for the first one, a hash index for near copies."""

import os

import numpy as np
import pytest
from conftest import write_class_folders

from tlcore.data import checking, duplicates, file_facts, images
from tlcore.data.audit import audit_dataset
from tlcore.data.duplicates import near_pairs_all, near_pairs_indexed


@pytest.fixture
def counted(monkeypatch):
    """Counts of the expensive looks at files: decoding checks, byte hashes, perceptual hashes."""
    counts = {"check": 0, "sha256": 0, "phash": 0}
    real_check, real_sha, real_phash = images.check_image, images.file_sha256, duplicates._picture_hash

    def count(kind, real):
        def wrapper(*args, **kwargs):
            counts[kind] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(images, "check_image", count("check", real_check))
    monkeypatch.setattr(images, "file_sha256", count("sha256", real_sha))
    monkeypatch.setattr(duplicates, "_picture_hash", count("phash", real_phash))
    return counts


def test_a_second_audit_of_an_unchanged_folder_reads_no_picture(tmp_path, counted):
    data = write_class_folders(tmp_path / "data", {"cats": 6, "dogs": 6})
    first = audit_dataset(data)
    assert counted["check"] == 12
    assert counted["phash"] == 0, "the perceptual hash comes from the check's own decode"
    counted.update(check=0, sha256=0, phash=0)

    second = audit_dataset(data)

    assert counted == {"check": 0, "sha256": 0, "phash": 0}
    assert second.to_dict() == first.to_dict()


def test_a_touched_file_is_looked_at_again_and_only_it(tmp_path, counted):
    data = write_class_folders(tmp_path / "data", {"cats": 6, "dogs": 6})
    audit_dataset(data)
    counted.update(check=0, sha256=0, phash=0)
    touched = next((data / "cats").iterdir())
    os.utime(touched, ns=(1, 1))

    audit_dataset(data)

    assert counted["check"] == 1


def test_a_new_split_is_made_without_looking_at_any_file_again(tmp_path, counted):
    data = write_class_folders(tmp_path / "data", {"cats": 10, "dogs": 10})
    before = audit_dataset(data, val_split=0.2)
    counted.update(check=0, sha256=0, phash=0)

    after = audit_dataset(data, val_split=0.3)

    assert counted == {"check": 0, "sha256": 0, "phash": 0}
    assert len(after.split_records("val")) > len(before.split_records("val"))


def test_many_files_are_checked_in_worker_processes_with_progress(tmp_path, monkeypatch):
    data = write_class_folders(tmp_path / "data", {"cats": 5, "dogs": 5})
    monkeypatch.setattr(checking, "PROCESSES_FROM_FILES", 1)
    monkeypatch.setattr(checking, "CHUNK_FILES", 3)
    seen = []

    audit = audit_dataset(data, progress=lambda done, total: seen.append((done, total)), find_duplicates=False)

    assert len(audit.records) == 10
    assert seen[-1] == (10, 10) and [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_the_hash_index_finds_exactly_the_pairs_that_comparing_all_pairs_finds():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, size=1500, dtype=np.int64).astype(np.uint64)
    for index in range(200):  # plant near copies 0 to 10 bits away, some beyond the threshold
        value = int(hashes[index])
        for bit in rng.choice(64, size=int(rng.integers(0, 11)), replace=False):
            value ^= 1 << int(bit)
        hashes[-1 - index] = np.uint64(value)

    for max_distance in (0, 3, 8):
        assert near_pairs_indexed(hashes, max_distance) == sorted(near_pairs_all(hashes, max_distance))


def test_the_store_forgets_a_file_whose_size_or_time_changed(tmp_path):
    store = file_facts.FileFacts(tmp_path / "facts.sqlite3")
    picture = tmp_path / "a.bin"
    picture.write_bytes(b"12345")
    key = file_facts.file_key(str(picture))
    store.put_many(file_facts.SHA256, {key: "abc"})
    assert store.get(file_facts.SHA256, [key]) == {str(picture): "abc"}

    picture.write_bytes(b"123456")
    assert store.get(file_facts.SHA256, [file_facts.file_key(str(picture))]) == {}


def test_a_new_split_of_an_audit_equals_auditing_again_with_that_split(tmp_path, counted):
    from tlcore.data.audit import with_new_split

    data = write_class_folders(tmp_path / "data", {"cats": 9, "dogs": 7})
    (data / "cats" / "copy.png").write_bytes((data / "dogs" / sorted(p.name for p in (data / "dogs").iterdir())[0]).read_bytes())
    base = audit_dataset(data, val_split=0.2)
    counted.update(check=0, sha256=0, phash=0)

    moved = with_new_split(base, 0.4, seed=7)

    assert counted == {"check": 0, "sha256": 0, "phash": 0}, "no file is read for a new split"
    assert moved.to_dict() == audit_dataset(data, val_split=0.4, seed=7).to_dict()


def test_when_worker_processes_cannot_start_threads_finish_the_audit(tmp_path, monkeypatch):
    # As in a script without `if __name__ == "__main__":`, whose spawned workers start the script again and die.
    from concurrent.futures.process import BrokenProcessPool

    class DiesAfterOneChunk:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, function, chunks):
            yield function(chunks[0])
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    data = write_class_folders(tmp_path / "data", {"cats": 5, "dogs": 5})
    monkeypatch.setattr(checking, "PROCESSES_FROM_FILES", 1)
    monkeypatch.setattr(checking, "CHUNK_FILES", 3)
    monkeypatch.setattr(checking, "ProcessPoolExecutor", DiesAfterOneChunk)
    seen = []

    audit = audit_dataset(data, progress=lambda done, total: seen.append(done), find_duplicates=False)

    assert len(audit.records) == 10
    assert sorted(record.path for record in audit.records) == sorted(str(path) for path in data.rglob("*.*"))
    assert seen == sorted(seen) and seen[-1] == 10
