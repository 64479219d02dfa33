"""What a page shows when something goes wrong, and how it leads to another page.

`shown_errors` is the one place that turns an exception into words on the page
(and `damage_shown` the one that turns a damaged run into a warning and goes on):
a `tlcore.TlcoreError` is written for people and shown as it is; anything else
is a bug, logged with its traceback for whoever runs the server and shown as a
short apology, never as Streamlit's exception box.
"""

from __future__ import annotations

import contextlib
import logging

import streamlit as st
from streamlit.errors import FragmentHandledException, StreamlitAPIException
from streamlit.runtime.scriptrunner import RerunException, StopException

import tlcore

LOGGER = logging.getLogger("tlcore.app")
UNEXPECTED = "Something went wrong on this page (details are in the server log). Try again, or reload the page."


@contextlib.contextmanager
def shown_errors():
    """Show errors from the code inside as messages and end this script run.

    Use it around a page's work (`with shown_errors(): ...`) or on a function
    (`@shown_errors()`), such as a fragment that reruns on its own.

    `st.stop()`, `st.rerun()` and `st.switch_page()` end a run with
    `StopException` or `RerunException` (BaseExceptions, so `except Exception`
    would not catch them anyway); they pass through untouched, and so does the
    exception a fragment raises after showing its own error.
    """
    try:
        yield
    except (StopException, RerunException, FragmentHandledException):
        raise
    except tlcore.TlcoreError as error:
        st.error(tlcore.markdown_text(error))  # it may name a class or a file: text, never markup
        st.stop()
    except Exception:
        LOGGER.exception("unexpected error on a page of the app")
        st.error(UNEXPECTED)
        st.stop()


@contextlib.contextmanager
def damage_shown():
    """Show a damaged run (`tlcore.DamagedRunError` from the code inside) as one warning, and go on with the page.

    The rest of the block is skipped; what follows it (the list of every run,
    the form for a new training) still shows, so one bad file never takes a
    page down. Other errors pass through to `shown_errors`.
    """
    try:
        yield
    except tlcore.DamagedRunError as error:
        st.warning(tlcore.markdown_text(str(error)))


@contextlib.contextmanager
def shown_here(where, what: str):
    """Errors from the code inside as one line about `what` in `where`; the page goes on (one picture of many).

    Like `shown_errors`, but for one item of a list: a picture that cannot be
    classified or shown gets its line, and the pictures after it still get theirs.

    Args:
        where: the container the line goes in (`st`, a column).
        what: the item's name as the user gave it ("wide.png"), shown as text.
    """
    try:
        yield
    except (StopException, RerunException, FragmentHandledException):
        raise
    except tlcore.TlcoreError as error:
        where.error(tlcore.markdown_text(f"{what}: {error}"))
    except Exception:
        LOGGER.exception("unexpected error on a page of the app, for one item (%r)", what)
        where.error(tlcore.markdown_text(f"{what}: something went wrong with this one (details are in the server log); "
                                         "the others are shown."))


def open_in_app_menu() -> None:
    """Run this page inside app.py's menu, also when it is the first address a fresh server gets.

    Because a folder called pages/ sits beside app.py, Streamlit starts in its
    old multipage mode: until some session has run `st.navigation` (app.py
    does), a page opened by its own address (`/data`) runs on its own, under a
    menu of file names ("app", "data", ...) and without app.py's page settings.
    `st.navigation` ends that mode for the whole server; this ends it as soon
    as a page sees it, and runs the address again through app.py. Call it first
    thing on every page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def link(page: str, label: str) -> None:
    """A link to another page; plain words when the page runs on its own (tests)."""
    try:
        st.page_link(page, label=label)
    except StreamlitAPIException:  # no st.navigation around this page: nothing to link to
        st.markdown(f"→ {label} (in the menu on the left)")


def go_to(page: str) -> None:
    """Switch to another page when the app runs with its menu; otherwise stay."""
    try:
        st.switch_page(page)  # ends this run with a RerunException, which is not caught here
    except StreamlitAPIException:  # no st.navigation around this page
        pass
