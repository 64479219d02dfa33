"""Class and file names shown as text everywhere: in Markdown (the model card), HTML, and the terminal.

The names are the attack's: Markdown that would turn bold and into a link, HTML
that would load an image with a script, and a line break with a right-to-left
override. Folders may carry such names on Linux, and the audit accepts them as
classes. The pages' side is in tests/app/test_hostile_inputs.py.
"""

import json
import pathlib
import re

import numpy as np
import pytest
from conftest import tlcore_cli, write_class_folders
from markdown_it import MarkdownIt

import tlcore
from tlcore.export.model_card import model_card
from tlcore.results.evaluation import classification_report
from tlcore.text import HIDDEN_CHARACTERS, html_text, markdown_text, terminal_text

BOLD_LINK = "**bold** [link](javascript:alert(1))"
IMAGE_TAG = "<img src=x onerror=alert(1)>"
LINE_BREAK_AND_OVERRIDE = "new\nline\u202eevil"
HOSTILE_NAMES = [BOLD_LINK, IMAGE_TAG, LINE_BREAK_AND_OVERRIDE]
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _rendered_text(markdown: str) -> str:
    """What a Markdown renderer shows for `markdown` when it is one paragraph: its text, tags removed."""
    html = MARKDOWN.render(markdown).strip()
    assert html.startswith("<p>") and html.endswith("</p>") and html.count("<") == 2, html
    return html[3:-4].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["1. first", "- item", "=== ", "a|b", "`code`", "&lt;", "$x$",
                                                  "www.example.com", "mail@example.com", ":red[x]", "back\\slash",
                                                  "under_score_", "~~gone~~", "# title", "> quote", "![i](x.png)",
                                                  "_x_", "__init__", "snake_case", "1) one", "+ x", "http://x.org",
                                                  "a www.b.c"])
def test_markdown_text_renders_as_the_name_itself(name):
    shown = _rendered_text(markdown_text(name))

    assert shown == terminal_text(name.replace("\n", " ")).strip()  # a paragraph drops its edge spaces


def test_hidden_characters_are_shown_as_escapes_in_every_medium():
    name = "cat\u202egnp.exe\x1b[31m\x85\u2028\u2066\u200f"

    for text in (terminal_text(name), markdown_text(name), html_text(name)):
        assert not HIDDEN_CHARACTERS.search(text)
    assert terminal_text(name) == "cat\\u202egnp.exe\\x1b[31m\\x85\\u2028\\u2066\\u200f"
    assert terminal_text("new\nline") == "new\\nline"


def test_ordinary_names_stay_as_they_are():
    for name in ("golden_retriever-2.jpg", "Katze (schwarz)", "🐱 cats", "IMG 0042.HEIC", "mobilenetv2_035"):
        assert markdown_text(name) == terminal_text(name) == html_text(name) == name


def test_html_text_is_no_tag():
    assert html_text(IMAGE_TAG) == "&lt;img src=x onerror=alert(1)&gt;"
    assert html_text('"&') == "&quot;&amp;"


def test_the_pages_and_files_reach_it_through_tlcores_public_names():
    assert tlcore.markdown_text is markdown_text and tlcore.terminal_text is terminal_text and tlcore.html_text is html_text


# ----------------------------------------------------------------- the model card


def _run_with_classes(run_dir: pathlib.Path, names: list[str]) -> dict:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(tlcore.TrainConfig(data=str(run_dir / "data"), epochs=1).to_json())
    (run_dir / "labels.json").write_text(json.dumps(names))
    counts = {name: {"train": 5, "val": 2, "test": 0} for name in names}
    (run_dir / "audit.json").write_text(json.dumps({
        "counts": counts, "split_sizes": {"train": 5 * len(names), "val": 2 * len(names), "test": 0},
        "skipped": [{"path": f"{IMAGE_TAG}/x.jpg", "reason": "not a picture"}]}))
    truth = np.repeat(np.arange(len(names)), 2)
    probabilities = np.eye(len(names))[truth] * 0.8 + 0.1
    return {"val": classification_report(truth, probabilities, names, [f"{name}/{index}.jpg" for index in range(len(truth))
                                                                       for name in names[:1]])}


def test_the_model_card_keeps_each_class_on_its_own_row_as_plain_text(tmp_path):
    names = HOSTILE_NAMES + ["a|b"]
    evaluation = _run_with_classes(tmp_path / "run", names)

    card = model_card(tmp_path / "run", [], evaluation)

    assert not HIDDEN_CHARACTERS.search(card.replace("\n", ""))
    assert not re.search(r"(?<!\\)<img|(?<!\\)\*\*bold", card)  # only as \<img and \*\*bold
    html = MARKDOWN.render(card)
    assert "<img" not in html and "<a " not in html
    assert "<strong>bold</strong>" not in html and "<strong>**all**" not in html
    for table in ("| class | training | validation | test |", "| class | precision | recall | F1 | pictures |"):
        rows = card.split(table)[1].split("\n\n")[0].strip().splitlines()[1:]  # the rows below the header's rule
        class_rows = [row for row in rows if "**all**" not in row]
        assert len(class_rows) == len(names), rows
        for row, name in zip(class_rows, names, strict=True):
            assert row.startswith(f"| {markdown_text(name)} |")
            assert row.replace("\\|", "").count("|") == table.count("|"), row  # no cell added or lost
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "**bold** [link](javascript:alert(1))" in html
    assert "new line\\u202eevil" in html


# ----------------------------------------------------------------- the command line


@pytest.fixture
def hostile_dataset(tmp_path) -> pathlib.Path:
    """Class folders named as the attack named them (a line break is allowed in a Linux folder name)."""
    return write_class_folders(tmp_path / "hostile", {name: 4 for name in HOSTILE_NAMES})


def test_the_cli_prints_each_class_on_one_line_with_nothing_hidden(hostile_dataset):
    result = tlcore_cli("audit", hostile_dataset, "--no-duplicates")

    assert result.returncode == 0, result.stderr
    assert not HIDDEN_CHARACTERS.search(result.stdout.replace("\n", ""))
    assert not HIDDEN_CHARACTERS.search(result.stderr.replace("\n", ""))
    rows = [line for line in result.stdout.splitlines() if line.rstrip().endswith(("0", "1", "2", "3", "4"))
            and line.startswith(tuple(terminal_text(name)[:4] for name in HOSTILE_NAMES))]
    assert [row.rsplit(maxsplit=3)[0] for row in rows] == sorted(terminal_text(name) for name in HOSTILE_NAMES)


def test_the_cli_json_has_the_names_escaped_and_decodes_to_them(hostile_dataset):
    result = tlcore_cli("audit", hostile_dataset, "--no-duplicates", "--json")

    assert result.returncode == 0, result.stderr
    assert not HIDDEN_CHARACTERS.search(result.stdout.replace("\n", ""))
    assert "\\u202e" in result.stdout
    assert sorted(json.loads(result.stdout.splitlines()[-1])["class_names"]) == sorted(HOSTILE_NAMES)


# ----------------------------------------------------------------- the bundle's web page


def test_the_web_page_shows_names_as_text_only():
    from tlcore.export.snippets import web_page_files

    files = web_page_files(32, IMAGE_TAG)
    page = files["web/index.html"]

    assert IMAGE_TAG not in page and html_text(IMAGE_TAG) in page  # the title
    script = page + files["web/pictures.js"]
    assert "textContent" in script
    assert not any(sink in script for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"))
