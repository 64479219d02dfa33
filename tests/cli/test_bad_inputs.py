"""The bad-input corpus: what users really bring, generated here (no committed binaries).

Every case ends in one of two ways, never a third:
- a correct skip: the audit names the file with a sensible reason and keeps the
  good files beside it (checked in-process and in `tlcore audit --json`);
- exit code 2 with exactly one `error:` line on stderr that says what was given
  and what was expected, and no "Traceback" anywhere.
Nothing is ever written outside its target: audits leave the dataset folder
untouched, and zip extraction writes only inside its own cache folder.

The Python API is called in-process where it can be (fast); the CLI runs as a
subprocess (`python -m tlcore`, a few seconds with TensorFlow) for a
representative subset. Every subprocess has a timeout, so a hang fails the test
instead of stalling the suite. TLCORE_HOME and KERAS_HOME point at fresh temporary
folders for every test (the autouse `isolated_homes` fixture in conftest.py), and
subprocesses inherit them.
"""

import functools
import hashlib
import io
import json
import os
import pathlib
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zipfile
import zlib

import numpy as np
import pytest
from conftest import save_image, smooth_picture
from PIL import Image

from tlcore.cli import main as cli
from tlcore.data import archive
from tlcore.data.audit import audit_dataset
from tlcore.errors import InputError
from tlcore.training.config import TrainConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60
TRAIN_TIMEOUT_S = 150  # TensorFlow's import, plus a failing weights download on a dead network


# ----------------------------------------------------------------- making files


picture = smooth_picture
save = save_image


def write_bytes(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jpeg_bytes(seed, size=(64, 48)):
    buffer = io.BytesIO()
    picture(seed, size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def good_dataset(root, per_class=3, classes=("cats", "dogs"), first_seed=5000):
    """Class folders of good JPEGs; returns their relative paths."""
    names = []
    for class_index, label in enumerate(classes):
        for index in range(per_class):
            relative = f"{label}/good{index}.jpg"
            save(root, relative, picture(first_seed + 1000 * class_index + index), quality=90)
            names.append(relative)
    return names


def png_declaring_size(width, height):
    """A real 1x1 PNG whose header claims another size, with a valid CRC; allocates nothing big."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width, height after signature, length, type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def sixteen_bit(seed, size=(64, 48)):
    values = (np.asarray(picture(seed, size).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return Image.fromarray(values)


def animated_gif(root, relative, seed):
    frames = [picture(seed + i) for i in range(3)]
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated(root, relative, seed):
    """Stored 80x40 on its side with EXIF orientation 6, so it is displayed 40x80."""
    exif = Image.Exif()
    exif[0x0112] = 6
    save(root, relative, picture(seed, (80, 40)), quality=95, exif=exif)


def tree_snapshot(root):
    """Every path under root with its size and content hash, links not followed."""
    snapshot = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = pathlib.Path(directory) / name
            if path.is_symlink():
                snapshot[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                snapshot[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif path.is_dir():
                snapshot[str(path)] = ("dir",)
            else:
                snapshot[str(path)] = ("other",)
    return snapshot


# ----------------------------------------------------------------- running the CLI


def run_cli(*args, timeout=CLI_TIMEOUT_S, extra_env=None):
    """`python -m tlcore ARGS` with this test's TLCORE_HOME and KERAS_HOME; a hang fails the test."""
    env = {key: value for key, value in os.environ.items() if key != "TLCORE_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tlcore", *map(str, args)],
            capture_output=True, text=True, errors="backslashreplace", env=env, cwd=REPO_ROOT, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`tlcore {' '.join(map(str, args))}` hung: no answer within {timeout} s")
    result.elapsed_s = time.monotonic() - started
    return result


def assert_one_error_line(returncode, stdout, stderr, *fragments):
    """Exit 2, exactly one `error:` line containing every fragment, and no traceback anywhere."""
    assert "Traceback" not in stdout + stderr, stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert returncode == 2, f"exit code {returncode}; stderr: {stderr}"
    assert len(error_lines) == 1, stderr
    for fragment in fragments:
        assert fragment in error_lines[0], f"{fragment!r} not in {error_lines[0]!r}"
    return error_lines[0]


def cli_in_process(argv, capsys, monkeypatch):
    """`tlcore.cli.main(argv)` in this process, TensorFlow's import skipped (the options fail before it is needed)."""
    monkeypatch.setattr(cli, "import_tensorflow_quietly", lambda: None)
    returncode = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return returncode, captured.out, captured.err


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- the corpus folder

# Files a user may well have and that train fine: relative path -> (writer, format, width, height).
USABLE = {
    "cats/gray.jpg": (lambda r, p: save(r, p, picture(1).convert("L")), "JPEG", 64, 48),
    "cats/gray_alpha.png": (lambda r, p: save(r, p, picture(2).convert("LA")), "PNG", 64, 48),
    "cats/rgba.png": (lambda r, p: save(r, p, picture(3).convert("RGBA")), "PNG", 64, 48),
    "cats/palette.png": (lambda r, p: save(r, p, picture(4).convert("P")), "PNG", 64, 48),
    "cats/cmyk.jpg": (lambda r, p: save(r, p, picture(5).convert("CMYK")), "JPEG", 64, 48),
    "cats/bilevel.png": (lambda r, p: save(r, p, picture(6).convert("1")), "PNG", 64, 48),
    "cats/deep16.png": (lambda r, p: save(r, p, sixteen_bit(7)), "PNG", 64, 48),
    "dogs/bitmap.bmp": (lambda r, p: save(r, p, picture(8)), "BMP", 64, 48),
    "dogs/scan.tiff": (lambda r, p: save(r, p, picture(9)), "TIFF", 64, 48),
    "dogs/modern.webp": (lambda r, p: save(r, p, picture(10)), "WEBP", 64, 48),
    "dogs/animated.gif": (lambda r, p: animated_gif(r, p, 11), "GIF", 64, 48),
    "dogs/rotated.jpg": (lambda r, p: exif_rotated(r, p, 14), "JPEG", 40, 80),
    "dogs/dot.png": (lambda r, p: save(r, p, picture(15, (1, 1))), "PNG", 1, 1),
    "dogs/sliver.png": (lambda r, p: save(r, p, picture(16, (3, 500))), "PNG", 3, 500),
    "dogs/camera.jpg": (lambda r, p: save(r, p, picture(17, (6000, 4000)), quality=85), "JPEG", 6000, 4000),
    "dogs/named-png.jpg": (lambda r, p: save(r, p, picture(18), format="PNG"), "PNG", 64, 48),
    "chats 😺/été 🌞.jpg": (lambda r, p: save(r, p, picture(19)), "JPEG", 64, 48),
    "chats 😺/日本語の写真.png": (lambda r, p: save(r, p, picture(20)), "PNG", 64, 48),
}

_NOT_UTF8_NAME = os.fsdecode(b"dogs/\xff\xfebroken.jpg")  # old zips and memory cards have such names


def _fifo(root, relative):
    if hasattr(os, "mkfifo"):  # elsewhere the case is skipped: the file is not there
        os.mkfifo(root / relative)


# Files that cannot be used: relative path -> (writer, fragment of the skip reason).
UNUSABLE = {
    "cats/truncated.jpg": (lambda r, p: write_bytes(r, p, jpeg_bytes(30)[:600]), "truncated or corrupt"),
    "cats/zero-bytes.jpg": (lambda r, p: write_bytes(r, p, b""), "empty file"),
    "cats/error-page.png": (
        lambda r, p: write_bytes(r, p, b"<!DOCTYPE html><html><body>404 Not Found</body></html>"), "text/HTML"
    ),
    "cats/notes.jpg": (lambda r, p: write_bytes(r, p, b"remember to label the photos\n" * 20), "text/HTML"),
    "cats/bomb.png": (lambda r, p: write_bytes(r, p, png_declaring_size(20000, 20000)), "decompression bomb"),
    "cats/cut-header.png": (lambda r, p: write_bytes(r, p, png_declaring_size(64, 48)[:20]), "truncated or corrupt"),
    "dogs/noise.jpg": (lambda r, p: write_bytes(r, p, bytes(range(256)) * 8), "not an image"),
    "dogs/iphone.heic": (
        lambda r, p: write_bytes(r, p, b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + bytes(200)), "HEIC"
    ),
    "dogs/report.jpg": (lambda r, p: write_bytes(r, p, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(100)), "PDF"),
    "dogs/pipe.jpg": (lambda r, p: _fifo(r, p), "not a regular file"),
    "dogs/dangling.jpg": (lambda r, p: os.symlink(r / "nowhere.jpg", r / p), "file not found"),
    "dogs/self-link.jpg": (lambda r, p: os.symlink(r / p, r / p), "unreadable"),
    "dogs/loop": (lambda r, p: os.symlink(r / "dogs", r / p), "link to a folder"),
    "loose-photo.jpg": (lambda r, p: write_bytes(r, p, jpeg_bytes(31)), "not inside a class folder"),
    _NOT_UTF8_NAME: (lambda r, p: write_bytes(r, p, jpeg_bytes(32)[:500]), "truncated or corrupt"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One folder with good, odd-but-usable and unusable files side by side, audited once."""
    root = tmp_path_factory.mktemp("corpus") / "photos"
    good = good_dataset(root, per_class=3)
    for relative, (writer, *_expected) in USABLE.items():
        writer(root, relative)
    for relative, (writer, _reason) in UNUSABLE.items():
        try:
            writer(root, relative)
        except (UnicodeEncodeError, OSError):
            if relative != _NOT_UTF8_NAME:
                raise  # a file system that refuses non-UTF-8 names (macOS) just loses that one case
    before = tree_snapshot(root)
    audit = audit_dataset(root)
    return {"root": root, "good": good, "audit": audit, "before": before}


def _created(corpus, relative):
    return os.path.lexists(corpus["root"] / relative)


@pytest.mark.parametrize("relative", list(UNUSABLE), ids=[ascii(name) for name in UNUSABLE])
def test_unusable_file_is_skipped_and_named_with_its_reason(corpus, relative):
    if not _created(corpus, relative):
        pytest.skip("this file system cannot hold the file")
    reasons = {item.relative: item.reason for item in corpus["audit"].skipped}

    assert relative in reasons, f"{relative!r} not reported; skipped: {sorted(reasons)}"
    assert UNUSABLE[relative][1] in reasons[relative]


@pytest.mark.parametrize("relative", list(USABLE))
def test_odd_but_usable_file_is_kept_with_its_real_format_and_size(corpus, relative):
    _writer, expected_format, width, height = USABLE[relative]
    records = {record.relative: record for record in corpus["audit"].records}

    assert relative in records, f"{relative!r} was not used; skipped: {corpus['audit'].skipped}"
    record = records[relative]
    assert (record.format, record.width, record.height) == (expected_format, width, height)


def test_good_files_beside_bad_ones_are_all_kept(corpus):
    used = {record.relative for record in corpus["audit"].records}

    assert set(corpus["good"]) <= used
    assert used == set(corpus["good"]) | set(USABLE)
    assert corpus["audit"].class_names == ["cats", "chats 😺", "dogs"]


def test_findings_name_the_odd_files(corpus):
    findings = {finding.kind: set(finding.files) for finding in corpus["audit"].findings}

    assert findings["tiny_images"] == {"dogs/dot.png", "dogs/sliver.png"}
    assert findings["extreme_aspect_ratio"] == {"dogs/sliver.png"}
    assert findings["animated_images"] == {"dogs/animated.gif"}
    assert findings["misnamed_files"] == {"dogs/named-png.jpg"}
    assert {"cats/cmyk.jpg", "cats/deep16.png", "cats/bilevel.png", "cats/gray_alpha.png", "dogs/scan.tiff",
            "dogs/modern.webp", "dogs/bitmap.bmp", "dogs/rotated.jpg"} <= findings["needs_conversion"]
    assert findings["skipped_files"] == {item.relative for item in corpus["audit"].skipped}
    assert "duplicates_within_class" not in findings  # unrelated pictures are not called copies


def test_audit_leaves_the_dataset_folder_exactly_as_it_was(corpus):
    assert tree_snapshot(corpus["root"]) == corpus["before"]


def test_cli_audit_json_names_every_skipped_and_used_file(corpus):
    # A strict UTF-8 console, as on most desktops: the non-UTF-8 name must still print.
    result = run_cli("audit", corpus["root"], "--json", extra_env={"PYTHONIOENCODING": "utf-8:strict"})

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    report = last_json(result.stdout)
    skipped = {item["relative"]: item["reason"] for item in report["skipped"]}
    for relative, (_writer, reason) in UNUSABLE.items():
        if _created(corpus, relative):
            assert reason in skipped[relative]
    assert {record["relative"] for record in report["records"]} == set(corpus["good"]) | set(USABLE)
    kinds = {finding["kind"] for finding in report["findings"]}
    assert {"skipped_files", "tiny_images", "extreme_aspect_ratio", "mixed_formats"} <= kinds


def test_cli_audit_text_report_lists_skips_and_findings(corpus, capsys, monkeypatch):
    returncode, out, err = cli_in_process(["audit", corpus["root"]], capsys, monkeypatch)

    assert returncode == 0, err
    assert "skipped cats/bomb.png: too large" in out
    assert "warning:" in out and "dogs/dot.png" in out


# ----------------------------------------------------------------- datasets that cannot be used at all


def _one_class(root):
    good_dataset(root, classes=("cats",))


def _only_non_images(root):
    write_bytes(root, "cats/readme.txt", b"these are my cats")
    write_bytes(root, "dogs/page.jpg", b"<html>moved</html>")


def _val_with_other_classes(root):
    good_dataset(root / "train", classes=("cats", "dogs"))
    good_dataset(root / "val", classes=("cats", "owls"))


def _train_without_val(root):
    good_dataset(root / "train")


def _a_file(root):
    write_bytes(root.parent, "photos.txt", b"not a folder")


def _zip_of_loose_pictures(root):
    with zipfile.ZipFile(root.parent / "photos.zip", "w") as output:
        for index in range(3):
            output.writestr(f"IMG_{index}.jpg", jpeg_bytes(700 + index))


# name -> (make the input under tmp_path / "photos", path given (relative to tmp_path), error fragments)
UNUSABLE_DATASETS = {
    "missing path": (None, "nowhere", ["nowhere", "does not exist", "one folder per class"]),
    "a file instead of a folder": (_a_file, "photos.txt", ["photos.txt", "is a file", "sub-folder per class"]),
    "an empty folder": (lambda root: root.mkdir(), "photos", ["no class folders", "one sub-folder per class"]),
    "one class": (_one_class, "photos", ["only the class 'cats'", "at least 2 classes"]),
    "only non-images": (_only_non_images, "photos", ["no class with usable images", "not an image"]),
    "val with classes train lacks": (_val_with_other_classes, "photos", ["owls", "same class folder names"]),
    "train without val": (_train_without_val, "photos", ["train/ folder but no val/", "add val/"]),
    "a text file named .zip": (
        lambda root: write_bytes(root.parent, "photos.zip", b"not a zip"), "photos.zip", ["photos.zip", "not a valid zip"]
    ),
    "an empty path": (None, "", ["no dataset given", "folder that holds one folder per class"]),
    "a zip of loose pictures": (_zip_of_loose_pictures, "photos.zip", ["no class folders found in", "photos.zip'"]),
}


@pytest.mark.parametrize("case", list(UNUSABLE_DATASETS))
def test_unusable_dataset_is_one_error_line_in_process(tmp_path, capsys, monkeypatch, case):
    make, given, fragments = UNUSABLE_DATASETS[case]
    if make:
        make(tmp_path / "photos")
    path = tmp_path / given if given else ""

    with pytest.raises(InputError):
        audit_dataset(path)
    returncode, out, err = cli_in_process(["audit", path], capsys, monkeypatch)
    line = assert_one_error_line(returncode, out, err, *fragments)
    assert "cache" not in line  # names what the user gave, not where tlcore unpacked it


@pytest.mark.parametrize("case", ["missing path", "only non-images", "a file instead of a folder"])
def test_unusable_dataset_is_one_error_line_from_the_cli(tmp_path, case):
    make, given, fragments = UNUSABLE_DATASETS[case]
    if make:
        make(tmp_path / "photos")

    result = run_cli("audit", tmp_path / given, "--json")

    assert_one_error_line(result.returncode, result.stdout, result.stderr, *fragments)


@pytest.mark.parametrize("value", ["nan", "0", "2", "-0.1"])
def test_val_split_out_of_range_is_an_input_error(tmp_path, capsys, monkeypatch, value):
    good_dataset(tmp_path)

    returncode, out, err = cli_in_process(["audit", tmp_path, "--val-split", value], capsys, monkeypatch)

    assert_one_error_line(returncode, out, err, "val_split", "from 0.05 to 0.5", "got")


# ----------------------------------------------------------------- odd structures that still work


def test_class_with_one_image_is_kept_and_named(tmp_path):
    good_dataset(tmp_path)
    save(tmp_path, "owls/only.jpg", picture(77))

    audit = audit_dataset(tmp_path)

    finding = next(f for f in audit.findings if f.kind == "class_too_small")
    assert finding.files == ("owls/only.jpg",) and finding.classes == ("owls",)
    assert audit.counts()["owls"] == {"train": 1, "val": 0, "test": 0}


def test_120_classes_are_audited_with_one_finding_not_120(tmp_path):
    for index in range(120):
        for copy_index in range(2):
            save(tmp_path, f"class{index:03d}/{copy_index}.png", picture(10 * index + copy_index, (40, 40)))

    started = time.perf_counter()
    audit = audit_dataset(tmp_path)

    assert len(audit.class_names) == 120 and len(audit.records) == 240
    assert all(counts == {"train": 1, "val": 1, "test": 0} for counts in audit.counts().values())
    assert [f.kind for f in audit.findings] == ["small_class"]
    assert len(audit.findings[0].classes) == 120 and "and 115 more" in audit.findings[0].message
    assert time.perf_counter() - started < 30


def test_symlink_loops_do_not_hang_and_are_named(tmp_path):
    good_dataset(tmp_path)
    os.symlink(tmp_path, tmp_path / "cats" / "everything")  # a link back up to the dataset
    os.symlink(tmp_path / "dogs", tmp_path / "puppies")  # a class folder that is a link
    os.symlink(tmp_path / "cats" / "me.jpg", tmp_path / "cats" / "me.jpg")

    audit = audit_dataset(tmp_path)

    reasons = {item.relative: item.reason for item in audit.skipped}
    assert "link to a folder" in reasons["cats/everything"]
    assert "link to a folder" in reasons["puppies"]
    assert "unreadable" in reasons["cats/me.jpg"]
    assert len(audit.records) == 6


def test_val_folder_missing_a_class_is_flagged_not_fatal(tmp_path):
    good_dataset(tmp_path / "train", classes=("cats", "dogs", "owls"))
    good_dataset(tmp_path / "val", classes=("cats", "dogs"), first_seed=500)

    audit = audit_dataset(tmp_path)

    assert audit.layout == "split_folders"
    assert next(f for f in audit.findings if f.kind == "class_not_validated").classes == ("owls",)


# ----------------------------------------------------------------- zips


def _zip(path, entries):
    """Write entries under exactly the names given (ZipInfo keeps `../` and `/` as written)."""
    with zipfile.ZipFile(path, "w") as output:
        for name, data in entries.items():
            output.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _good_zip_entries():
    return {f"{label}/{index}.jpg": jpeg_bytes(100 * n + index) for n, label in enumerate(("cats", "dogs"))
            for index in range(3)}


def _assert_only_inside(home, extraction):
    """Every file under TLCORE_HOME lies inside the extraction folder (but tlcore's own store of per-file facts),
    and its parents hold nothing else."""
    from tlcore.data.file_facts import STORE_FILE

    zips = home / "cache" / "zips"
    assert extraction.parent == zips
    assert [child.name for child in zips.iterdir()] == [extraction.name]
    assert sorted(child.name for child in (home / "cache").iterdir()) == sorted(["zips", STORE_FILE])
    for path in home.rglob("*"):
        if path.is_file() and path.name != STORE_FILE:
            assert path.is_relative_to(extraction), f"{path} was written outside {extraction}"


def test_zip_with_escaping_and_absolute_entries_keeps_them_out(tmp_path):
    outside = tmp_path / "outside"
    entries = _good_zip_entries()
    entries.update({
        "../escaped.jpg": jpeg_bytes(900),
        "../../escaped-twice.jpg": jpeg_bytes(901),
        "cats/../../escaped-inside.jpg": jpeg_bytes(902),
        f"{outside}/absolute.jpg": jpeg_bytes(903),
        "C:/Windows/drive.jpg": jpeg_bytes(904),
    })
    zip_path = _zip(tmp_path / "photos.zip", entries)

    audit = audit_dataset(zip_path)

    reasons = {item.relative: item.reason for item in audit.skipped}
    assert "escapes" in reasons["../escaped.jpg"] and "escapes" in reasons["../../escaped-twice.jpg"]
    assert "escapes" in reasons["cats/../../escaped-inside.jpg"]
    assert "absolute" in reasons[f"{outside}/absolute.jpg"] and "absolute" in reasons["C:/Windows/drive.jpg"]
    assert len(audit.records) == 6
    _assert_only_inside(pathlib.Path(os.environ["TLCORE_HOME"]), pathlib.Path(audit.root))
    assert not outside.exists()
    assert sorted(child.name for child in tmp_path.iterdir()) == ["photos.zip"]
    assert not list(tmp_path.parent.glob("escaped*"))


def test_zip_slip_through_the_cli_json_names_the_refused_entries(tmp_path):
    entries = _good_zip_entries()
    entries.update({"../../evil.jpg": jpeg_bytes(905), "/etc/evil.jpg": jpeg_bytes(906)})
    zip_path = _zip(tmp_path / "photos.zip", entries)

    result = run_cli("audit", zip_path, "--json")

    assert result.returncode == 0, result.stderr
    skipped = {item["relative"]: item["reason"] for item in last_json(result.stdout)["skipped"]}
    assert "escapes" in skipped["../../evil.jpg"] and "absolute" in skipped["/etc/evil.jpg"]
    assert not pathlib.Path("/etc/evil.jpg").exists()
    assert not (pathlib.Path(os.environ["TLCORE_HOME"]) / "evil.jpg").exists()


def _zip_claiming_size(path, claimed_bytes):
    """A small valid zip whose central directory claims one entry holds `claimed_bytes` (a classic bomb header)."""
    _zip(path, _good_zip_entries())
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first central directory entry
    data[central + 24 : central + 28] = struct.pack("<I", claimed_bytes)  # its uncompressed size
    path.write_bytes(bytes(data))
    return path


def test_zip_bomb_is_refused_by_the_cli_before_anything_is_written(tmp_path):
    zip_path = _zip_claiming_size(tmp_path / "bomb.zip", 4_000_000_000)

    result = run_cli("audit", zip_path)

    assert_one_error_line(result.returncode, result.stdout, result.stderr, "bomb.zip", "zip bomb", "unzip it yourself")
    zips = pathlib.Path(os.environ["TLCORE_HOME"]) / "cache" / "zips"
    assert not zips.exists() or not any(zips.iterdir())


def test_zip_that_really_expands_past_the_cap_is_stopped_and_cleaned_up(tmp_path, monkeypatch):
    # The real cap is 2 GB; the same code path is exercised with 1 MB so the test stays small.
    monkeypatch.setattr(archive, "extract_zip", functools.partial(archive.extract_zip, max_total_bytes=1024**2))
    entries = _good_zip_entries()
    entries["cats/huge.jpg"] = bytes(8 * 1024**2)  # 8 MB of zeros, a few kB compressed
    zip_path = _zip(tmp_path / "bomb.zip", entries)

    with pytest.raises(InputError, match="zip bomb"):
        audit_dataset(zip_path)
    zips = pathlib.Path(os.environ["TLCORE_HOME"]) / "cache" / "zips"
    assert not zips.exists() or not any(zips.iterdir())


# ----------------------------------------------------------------- training options


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["--backbone", "resnet9000"], ["unknown backbone 'resnet9000'", "mobilenetv2_035"]),
        (["--epochs", "0"], ["epochs", "got 0", "from 1"]),
        (["--learning-rate", "-0.01"], ["learning_rate", "greater than 0", "-0.01"]),
        (["--learning-rate", "nan"], ["learning_rate", "greater than 0", "nan"]),
        (["--batch-size", "0"], ["batch_size", "got 0"]),
        (["--image-size", "5"], ["image size 5", "from 32"]),
        (["--epochs", "ten"], ["expected a whole number", "'ten'"]),
        (["--preset", "turbo"], ["--preset", "'turbo'", "'fast', 'best'"]),
    ],
    ids=["unknown backbone", "epochs 0", "negative learning rate", "nan learning rate", "batch 0", "image 5",
         "epochs not a number", "unknown preset"],
)
def test_bad_training_option_is_one_error_line(tmp_path, capsys, monkeypatch, options, fragments):
    good_dataset(tmp_path)

    returncode, out, err = cli_in_process(["train", tmp_path, *options], capsys, monkeypatch)

    assert_one_error_line(returncode, out, err, *fragments)


def test_bad_options_are_input_errors_in_the_python_api(tmp_path):
    for options in ({"backbone": "nope"}, {"epochs": 0}, {"learning_rate": -1.0}, {"val_split": float("nan")}):
        with pytest.raises(InputError):
            TrainConfig(data=str(tmp_path), **options)


def test_one_excluded_path_given_as_a_string_is_one_path(tmp_path):
    config = TrainConfig(data=str(tmp_path), excluded_files="cats/good0.jpg")

    assert config.excluded_files == ("cats/good0.jpg",)


def test_unknown_backbone_from_the_cli_with_tensorflow_loaded(tmp_path):
    good_dataset(tmp_path)

    result = run_cli("train", tmp_path, "--backbone", "nope", "--epochs", "1")

    assert_one_error_line(result.returncode, result.stdout, result.stderr, "unknown backbone 'nope'", "expected one of")


@pytest.mark.timeout(TRAIN_TIMEOUT_S + 30)
def test_backbone_without_offline_weights_fails_fast_with_the_file_it_needs(tmp_path):
    data = tmp_path / "photos"
    good_dataset(data)
    keras_home = pathlib.Path(os.environ["KERAS_HOME"])  # fresh and empty for this test
    assert not (keras_home / "models" / "efficientnetb0_notop.h5").exists()

    result = run_cli("train", data, "--backbone", "efficientnetb0", "--epochs", "1", timeout=TRAIN_TIMEOUT_S)

    line = assert_one_error_line(
        result.returncode, result.stdout, result.stderr, "efficientnetb0_notop.h5", "tlcore weights import"
    )
    assert str(keras_home) in line
    assert result.elapsed_s < TRAIN_TIMEOUT_S


def test_weights_download_has_a_timeout_so_a_dead_network_cannot_hang():
    from tlcore.model import backbones

    # A server that accepts connections and never answers, like a firewall that drops packets.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        started = time.monotonic()
        with backbones._socket_timeout(0.5), pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/weights.h5")  # no timeout given, as Keras does
        assert time.monotonic() - started < 5
        assert socket.getdefaulttimeout() is None  # restored afterwards
    finally:
        server.close()


# ----------------------------------------------------------------- the CLI's contract on every exit


def test_json_mode_ends_with_an_object_even_on_bad_input(tmp_path, capsys, monkeypatch):
    returncode, stdout, stderr = cli_in_process(["audit", tmp_path / "no such folder", "--json"], capsys, monkeypatch)
    assert returncode == 2 and stderr.startswith("error:")
    outcome = last_json(stdout)
    assert outcome["status"] == "error" and outcome["exit_code"] == 2 and "does not exist" in outcome["error"]


def test_json_never_holds_nan(capsys):
    cli.print_json({"loss": float("nan"), "rows": [float("inf"), 1.5]})
    assert json.loads(capsys.readouterr().out) == {"loss": None, "rows": [None, 1.5]}


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    # `tlcore backbones | head -1`: the pipe closes while tlcore still writes.
    done = subprocess.run(["bash", "-c", f"'{sys.executable}' -m tlcore backbones | head -1; exit ${{PIPESTATUS[0]}}"],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr


def test_a_model_file_holding_code_is_refused_with_a_message(tmp_path):
    import keras

    from tlcore.results.prediction import load_run_model

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"data": "x"}))
    (run_dir / "labels.json").write_text(json.dumps(["a", "b"]))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(run_dir / "model.keras")

    with pytest.raises(InputError, match="contains code"):
        load_run_model(run_dir)
