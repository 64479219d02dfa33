"""MODEL_CARD.md: what a bundle's model is, what it learned from, how well it does, and its limits.

Written from the run folder (config, audit, split, evaluation) and the parity
reports of the files in the bundle, for the person the model is handed to.
Every class and file name goes in through `tlcore.text.markdown_text`: a
folder named `<img src=x onerror=…>` or holding a line break is a name in a
table cell, never HTML or a broken row.
"""

from __future__ import annotations

import pathlib
import platform
from importlib import metadata

from tlcore.export.formats import export_format
from tlcore.export.parity import ParityReport
from tlcore.runs import folder as run_folder
from tlcore.text import markdown_text

_SETTINGS = (
    ("backbone", "pretrained network"), ("image_size", "picture size (px)"), ("weights", "starting weights"),
    ("freeze", "frozen layers"), ("augment", "augmentation"), ("epochs", "epochs at most"),
    ("batch_size", "batch size"), ("learning_rate", "learning rate"), ("dropout", "dropout"),
    ("label_smoothing", "label smoothing"), ("early_stopping_patience", "early stopping patience"),
    ("two_phase", "two phases (head, then fine-tuning)"), ("class_weights", "class weights"),
    ("val_split", "validation share"), ("seed", "seed"),
)


def model_card(run_dir: str | pathlib.Path, reports: list[ParityReport], evaluation: dict | None = None,
               formats: list[str] | None = None, note: str = "") -> str:
    """The model card's Markdown text.

    Args:
        run_dir: the run folder.
        reports: the parity reports of the bundled files (those checked).
        evaluation: the run's evaluation ({"val": report, ...}); read from
            evaluation.json when not given.
        formats: the bundled formats; default those of `reports`.
        note: what was not re-checked and why (`Bundle.note`); "" when all was.

    Returns:
        MODEL_CARD.md's text.
    """
    from tlcore.model.backbones import get_backbone
    from tlcore.training.config import TrainConfig

    run_path = pathlib.Path(run_dir)
    config = TrainConfig.from_run(run_path)
    audit = run_folder.read_json(run_path / "audit.json", {}) or {}
    audit = audit if isinstance(audit, dict) else {}  # a damaged audit.json: the card says less about the data
    labels = run_folder.run_labels(run_path)
    evaluation = evaluation if evaluation is not None else _saved_evaluation(run_path)
    formats = list(formats) if formats is not None else [report.format for report in reports]
    title = get_backbone(config.backbone).title
    sections = [
        f"# {markdown_text(run_path.name)}\n\nAn image classifier made with tlcore: {title}, pretrained on ImageNet, "
        f"fine-tuned to tell apart {len(labels)} classes ({', '.join(map(markdown_text, labels))}) in pictures of "
        f"{config.resolved_image_size}x{config.resolved_image_size} pixels.",
        _data_section(config, audit, labels),
        _metrics_section((evaluation or {}).get("val")),
        _settings_section(config),
        _software_section(reports),
        _parity_section(reports, note),
        _use_section(formats, config.resolved_image_size),
        _limitations_section(labels, (evaluation or {}).get("val"), reports),
    ]
    return "\n\n".join(sections) + "\n"


def _saved_evaluation(run_path: pathlib.Path) -> dict:
    """evaluation.json, or {} when there is none or it cannot be read (the card then says it has no evaluation)."""
    from tlcore.errors import DamagedRunError
    from tlcore.results.evaluation import read_evaluation

    try:
        return read_evaluation(run_path) or {}
    except DamagedRunError:
        return {}


def _data_section(config, audit: dict, labels: list[str]) -> str:
    counts = audit.get("counts", {})
    rows = ["| class | training | validation | test |", "|---|---:|---:|---:|"]
    for name in labels:
        split = counts.get(name, {})
        rows.append(f"| {markdown_text(name)} | {split.get('train', 0)} | {split.get('val', 0)} | {split.get('test', 0)} |")
    sizes = audit.get("split_sizes", {})
    rows.append(f"| **all** | {sizes.get('train', 0)} | {sizes.get('val', 0)} | {sizes.get('test', 0)} |")
    lines = [
        "## Data", "",
        f"Pictures from {markdown_text(audit.get('source', config.data))} "
        f"({str(audit.get('layout', 'class folders')).replace('_', ' ')}), "
        f"{audit.get('total_images', sum(sizes.values()) if sizes else '?')} in all.", "",
        *rows, "",
        f"Split: {config.val_split:.0%} of each class held out for validation (seed {config.seed}) unless the "
        "folder had its own val/ folder; byte-identical copies are kept on one side of the split.",
    ]
    skipped, excluded = audit.get("skipped", []), list(config.excluded_files) or audit.get("excluded_files", [])
    lines.append(f"Skipped as unusable: {len(skipped)} file(s)" + (f" (e.g. {markdown_text(skipped[0].get('path'))}: "
                 f"{markdown_text(skipped[0].get('reason'))})." if skipped and isinstance(skipped[0], dict) else "."))
    lines.append(f"Left out by the user: {len(excluded)} file(s)" + (": " + ", ".join(map(markdown_text, excluded[:20]))
                 + (" …" if len(excluded) > 20 else "") + "." if excluded else "."))
    return "\n".join(lines)


def _metrics_section(report: dict | None) -> str:
    if not report:
        return "## How well it does\n\nThe run has no evaluation on validation pictures."
    count = report["images"]
    rows = ["| class | precision | recall | F1 | pictures |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {markdown_text(row['class'])} | {row['precision']:.1%} | {row['recall']:.1%} | {row['f1']:.2f} | {row['support']} |"
             for row in report["per_class"]]
    macro = f", macro F1 {report['macro_f1']:.2f}" if report.get("macro_f1") is not None else ""
    return "\n".join([
        "## How well it does (validation pictures, never trained on)", "",
        f"Accuracy **{report['accuracy']:.1%}** on {count} pictures{macro}; one picture is "
        f"{100 / max(count, 1):.1f} points.", "", *rows])


def _settings_section(config) -> str:
    values = {**config.to_dict(), "image_size": config.resolved_image_size}
    rows = ["| setting | value |", "|---|---|"]
    rows += [f"| {words} | `{values.get(name)}` |" for name, words in _SETTINGS if name in values]
    return "## Settings\n\n" + "\n".join(rows)


def _software_section(reports: list[ParityReport]) -> str:
    import tlcore

    versions = [f"tlcore {tlcore.__version__}", _version("Keras", "keras"), _version("TensorFlow", "tensorflow"),
                f"Python {platform.python_version()}"]
    runtimes = sorted({report.runtime for report in reports})
    text = "## Software\n\nTrained and exported with " + ", ".join(versions) + "."
    return text + (f" Checked with {', '.join(runtimes)}." if runtimes else "")


def _version(title: str, distribution: str) -> str:
    try:
        return f"{title} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return title


def parity_table(reports: list[ParityReport]) -> str:
    """The parity reports as a Markdown table (the model card's, and the CLI's --check output)."""
    rows = ["| file | runtime | agrees with the app | accuracy (app's) | largest probability difference | size | "
            "time per picture |", "|---|---|---:|---:|---:|---:|---:|"]
    for report in reports:
        mark = (" ⚠" if report.flagged else "") + ("" if report.rechecked else f" (check of {report.check_date})")
        rows.append(
            f"| {markdown_text(pathlib.Path(report.path).name)} ({export_format(report.format).name}) | "
            f"{markdown_text(report.runtime)} | "
            f"{report.agreement:.1%}{mark} | {report.accuracy:.1%} ({report.app_accuracy:.1%}) | "
            f"{report.max_probability_difference:.2g} | {report.size_bytes / 1e6:.1f} MB | {report.latency_ms:.1f} ms |")
    return "\n".join(rows)


def _parity_section(reports: list[ParityReport], note: str = "") -> str:
    if not reports:
        return "## Exported files\n\n" + (f"⚠ {note}" if note else "None.")
    first = reports[0]
    lines = ["## Exported files: do they score like the model in the app?", "",
             f"Each file re-scored the run's {first.pictures} {_split_words(first.split)} outside the app: loaded "
             "with its own runtime, every picture prepared by the snippets' code and run on its own, on the machine "
             "that exported it (times are for that machine).", "", parity_table(reports)]
    if note:
        lines += ["", f"⚠ {note}"]
    for report in (report for report in reports if report.flagged):
        lines += ["", f"⚠ {markdown_text(pathlib.Path(report.path).name)} answers differently from the app on "
                      f"{len(report.differing)} of {report.pictures} pictures:"]
        lines += [f"- {markdown_text(row['file'])} (is {markdown_text(row['true'])}): app {markdown_text(row['app'])} "
                  f"{row['app_probability']:.0%}, file {markdown_text(row['exported'])} {row['exported_probability']:.0%}"
                  for row in report.differing[:20]]
    return "\n".join(lines)


def _split_words(split: str) -> str:
    return {"val": "validation pictures", "test": "test pictures"}.get(split, "training pictures (it has no validation ones)")


def _use_section(formats: list[str], size: int) -> str:
    from tlcore.export.snippets import script_name

    lines = ["## How to use it", "",
             f"Every file takes RGB pictures of {size}x{size} pixels with values 0-255 (scaling is inside the model) "
             "and gives one probability per class, in the order of `labels.json`. Prepare pictures as the app does: "
             "decode, turn upright by the EXIF orientation, convert to RGB, then resize with area averaging when the "
             "picture is larger (bilinear when smaller) and round. The scripts here do exactly that:", ""]
    lines += [f"- `python3 {script_name(format)} photo.jpg` ({export_format(format).title}; "
              f"`pip install {export_format(format).pip} numpy`)" for format in formats]
    if "onnx" in formats:
        lines += ["- `web/index.html` runs model.onnx in a web browser with ONNX Runtime Web (loaded from jsDelivr): "
                  "in this folder run `python3 -m http.server` and open http://localhost:8000/web/ ; "
                  "`web/classify.js` shows how a page of your own does it."]
    return "\n".join(lines)


def _limitations_section(labels: list[str], report: dict | None, reports: list[ParityReport]) -> str:
    count = report["images"] if report else 0
    lines = ["## Known limitations", "",
             f"- It only knows these {len(labels)} classes. A picture of anything else still gets one of them, "
             "often with a high probability.",
             f"- The accuracy above comes from {count} validation pictures: one picture more or less right moves it by "
             f"{100 / max(count, 1):.1f} points, so expect the real figure to differ by several points.",
             "- It learned from pictures like the ones it was trained on; other cameras, lighting, backgrounds or "
             "framing can make it do worse.",
             "- Pictures prepared another way (another resize filter, such as Pillow's BOX or bilinear, or no EXIF "
             "rotation) give slightly different numbers, enough to change the answer for a few pictures.",
             "- In a web browser, pictures with transparency or 16 bits per channel can come out a level different "
             "from the app's (browsers decode those their own way); ordinary photos come out the same."]
    if any(report.format == "tflite-int8" for report in reports):
        lines.append("- The 8-bit file rounds the model's numbers: its probabilities differ a little, and its answer "
                     "can differ for pictures the model is unsure about (see the table).")
    return "\n".join(lines)
