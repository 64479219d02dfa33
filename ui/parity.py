"""The parity table: does each exported file score like the model in the app? Files that do not, in red."""

from __future__ import annotations

import pathlib

import pandas as pd
import streamlit as st

import tlcore
from ui import words

FLAG_STYLE = "background-color: #fde2e1; color: #9b1c1c; font-weight: 600"
MAX_PICTURES_SHOWN = 8


def parity_rows(reports: list) -> pd.DataFrame:
    """One row per exported file, in words and units people read."""
    return pd.DataFrame([
        {
            "file": pathlib.Path(report.path).name,
            "runs with": report.runtime,
            "agrees with the app": words.percent(report.agreement, decimals=1)
            + ("" if report.rechecked else f" (check of {report.check_date})"),
            "accuracy": words.percent(report.accuracy, decimals=1),
            "largest probability difference": f"{report.max_probability_difference:.2g}",
            "size": f"{report.size_bytes / 1e6:.1f} MB",
            "time per picture": f"{report.latency_ms:.1f} ms",
        }
        for report in reports
    ])


def show_parity(reports: list) -> None:
    """The table, with each flagged file's row in red and the pictures it answers differently below it."""
    if not reports:
        return
    first = reports[0]
    st.markdown(f"**Checked outside the app** on the run's {first.pictures} checking pictures: each file loaded "
                "with its own runtime, each picture prepared by the code in the zip. The model in the app gets "
                f"{words.percent(first.app_accuracy, decimals=1)} of them right; times are for this computer.")
    flagged = [report.flagged for report in reports]
    table = parity_rows(reports).style.apply(
        lambda row: [FLAG_STYLE if flagged[row.name] else ""] * len(row), axis=1)
    st.dataframe(table, hide_index=True, key="export_parity_table")
    for report in reports:
        if report.flagged:
            _show_differences(report)


def _show_differences(report) -> None:
    title = tlcore.export_format(report.format).title
    st.error(f"{title} answers differently from the app on {len(report.differing)} of {report.pictures} pictures "
             f"({1 - report.agreement:.0%}), more than 1%. Use it only where that is acceptable.")
    columns = st.columns(4)
    for index, row in enumerate(report.differing[:MAX_PICTURES_SHOWN]):
        column = columns[index % 4]
        caption = tlcore.markdown_text(f"is {row['true']}: app {row['app']} {row['app_probability']:.0%}, "
                                       f"file {row['exported']} {row['exported_probability']:.0%}")
        if pathlib.Path(row["file"]).is_file():
            column.image(row["file"], caption=caption, width=150)
        else:
            column.caption(caption)
