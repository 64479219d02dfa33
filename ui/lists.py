"""Long lists shown whole: a page at a time, with how many there are, and "show all".

A list that silently stops at ten leaves the user thinking there are ten. Every
list here says how many items it has and which ones are on screen, and can be
paged through or shown whole.
"""

from __future__ import annotations

import streamlit as st

from ui import words


def paged(items: list, key: str, per_page: int = 10, noun: str = "item") -> list:
    """The items to show now, after a line saying which of how many they are and controls to see the others.

    Args:
        items: everything there is to show.
        key: a prefix for the widgets' keys (one list, one key).
        per_page: how many to show at once.
        noun: what one item is ("group", "picture").

    Returns:
        The slice of `items` on the current page (all of them when "show all" is on).
    """
    total = len(items)
    if total <= per_page:
        if total:
            st.caption(f"{words.count(total, noun)}." if total == 1 else f"All {words.count(total, noun)}.")
        return list(items)
    pages = -(-total // per_page)
    left, right = st.columns([3, 1], vertical_alignment="center")
    show_all = right.toggle("Show all", key=f"{key}_show_all", help=f"All {words.count(total, noun)} at once.")
    if show_all:
        left.caption(f"All {words.count(total, noun)}.")
        return list(items)
    page = left.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page")
    start = (int(page) - 1) * per_page
    shown = items[start:start + per_page]
    left.caption(f"Showing {start + 1}–{start + len(shown)} of {words.count(total, noun)}.")
    return list(shown)


def short_name(relative: str, limit: int = 28) -> str:
    """A file's name for a caption: the name without its folders, shortened in the middle when long."""
    name = relative.replace("\\", "/").rsplit("/", 1)[-1]
    return name if len(name) <= limit else name[: limit // 2 - 1] + "…" + name[-(limit // 2):]
