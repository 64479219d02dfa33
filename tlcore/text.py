"""Names shown as text: a class or file name is data, never markup or a terminal command.

Class names come from folder names and file names from the user's disk or
browser; either may hold Markdown (`**bold** [link](…)`), HTML
(`<img src=x onerror=…>`), line breaks, or characters that change how the rest
of a line is shown (C0 and C1 controls, and the Unicode direction marks and
overrides of "Trojan Source", U+202E and friends). Wherever a name goes into a
medium that reads markup, it goes through that medium's function here first:

- `markdown_text`: Streamlit's markdown, captions and labels, and Markdown
  files such as MODEL_CARD.md (table cells included).
- `html_text`: HTML pages, and Plotly's labels (which read a few HTML tags).
- `terminal_text`: what the command line prints.

Each makes control and direction characters visible as Python writes them
(`\\n`, `\\x1b`, `\\u202e`), so two names that differ only there still look
different, and nothing about the name is silently dropped.

Example:
    st.markdown(f"**{markdown_text(name)}** ({count} pictures)")
    print(f"{terminal_text(name):<24} {count:>6}")
"""

from __future__ import annotations

import html
import re

# What a terminal or page does not show as itself: the C0 controls (newline, escape, NUL…), DEL and the C1
# controls (Unicode's category Cc); the line and paragraph separators, which end a line in some terminals and
# editors; and the direction marks, embeddings, overrides and isolates, each of which changes the order in
# which the characters after it are shown, so a name holding one can make a line read as something else.
HIDDEN_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    "\u2028\u2029"  # LINE SEPARATOR, PARAGRAPH SEPARATOR
    "\u061c\u200e\u200f"  # ARABIC LETTER MARK, LEFT-TO-RIGHT MARK, RIGHT-TO-LEFT MARK
    "\u202a-\u202e"  # embeddings, pop, overrides
    "\u2066-\u2069]"  # isolates
)

# Markdown's specials that act anywhere in a line, each backslash-escaped (CommonMark 0.31, section 2.4: any
# ASCII punctuation may be): emphasis and code (`*`, `~`, backticks), links and images (`[`, `]`: without them
# `(…)` and `!` are plain), raw HTML and entities (`<`, `>`, `&`), GFM table cells (`|`), e-mail autolinks (`@`),
# maths (`$`) and the backslash itself. Streamlit's `:color[…]` directives need a `[` too.
_MARKDOWN_ANYWHERE = re.compile(r"[\\`*\[\]<>&~$|@]"
                                # `_` emphasises only at a word's edge (`_x_`), never inside one (`snake_case`).
                                r"|_(?![^\W_])|(?<![^\W_])_"
                                # GFM links `http://…` and `www.…` even without brackets (autolink literals).
                                r"|(?<=\w):(?=//)|(?i:(?<=\bwww))\.")
# Specials that act only at the start of a line: headings (`#`, `=`), list items (`-`, `+`, `1.`, `1)`).
_MARKDOWN_LINE_START = re.compile(r"^\s*(?:[-+=#]|\d+[.)])")


def visible_text(text: object) -> str:
    """The text with every control and direction character written as Python writes it (`\\n`, `\\u202e`).

    Args:
        text: any value; it is shown as `str(text)`.

    Returns:
        The text, one line, with nothing that moves the cursor or reorders what follows.
    """
    return HIDDEN_CHARACTERS.sub(lambda hidden: ascii(hidden[0])[1:-1], str(text))


def terminal_text(text: object) -> str:
    """A name as the command line prints it: one line, controls and direction marks shown as escapes.

    Example:
        terminal_text("cat\\u202egnp.exe") -> "cat\\\\u202egnp.exe"
    """
    return visible_text(text)


def markdown_text(text: object) -> str:
    """A name as Markdown shows it literally: inline, in a sentence or a table cell, never as markup.

    Line breaks and tabs become spaces (a name stays on its table row); other
    controls and direction marks become visible escapes; Markdown's and HTML's
    special characters, and the table's pipe, are backslash-escaped.

    Args:
        text: a class name, file name or any other value (shown as `str(text)`).

    Returns:
        Markdown source that renders as exactly the text.

    Example:
        markdown_text("**bold** [link](x)") -> "\\\\*\\\\*bold\\\\*\\\\* \\\\[link\\\\](x)"
    """
    flat = re.sub(r"\r\n|[\r\n\t\v\f]", " ", str(text))
    escaped = _MARKDOWN_ANYWHERE.sub(lambda special: "\\" + special[0], visible_text(flat))
    return _MARKDOWN_LINE_START.sub(lambda start: start[0][:-1] + "\\" + start[0][-1], escaped)


def html_text(text: object) -> str:
    """A name as HTML (or a Plotly label) shows it literally: `<`, `>`, `&` and quotes as entities.

    Controls and direction marks become visible escapes too.
    """
    return html.escape(visible_text(text), quote=True)
