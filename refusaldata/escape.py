"""Untrusted text made inert for the format it is written in: Markdown, spreadsheet-bound CSV.

A response is text a model wrote, and run, model and labeler names come from whoever made
the store, so none of it may become markup where it is shown: HTML is escaped with
`html.escape`; Markdown with `markdown_text`; a CSV a person opens in a spreadsheet with
`spreadsheet_cell`, which `from_spreadsheet` undoes exactly.
"""

from __future__ import annotations

import re

# Characters that make Markdown structure in running text or a table cell, each written so
# that every renderer (CommonMark, GitHub, Python-Markdown as MkDocs uses it, pandoc) shows
# the character and never reads it as structure: `& < > [ ] ~` as character references (no
# raw HTML such as `<script>` or `<img onerror=…>`, no link or image `[x](javascript:…)`,
# no autolink `<javascript:…>`; a backslash before `[` is math to some MkDocs setups), and
# the backslash, backtick, `*`, `_` and `|` backslash-escaped, as all of them read it (no code
# span, emphasis or cell break).
_MARKDOWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;", "~": "&#126;", "\\": "\\\\",
             "`": "\\`", "*": "\\*", "_": "\\_", "|": "\\|", "\n": " ", "\r": " "}
_MARKDOWN_SPECIAL = re.compile("[" + re.escape("".join(_MARKDOWN)) + "]")

# A cell a spreadsheet would read as a formula (or a formula after its own quote marks):
# OWASP's list, = + - @ and a leading tab or carriage return.
FORMULA_LEAD = r"^('*[=+\-@\t\r])"
QUOTED_FORMULA_LEAD = r"^'('*[=+\-@\t\r])"


def markdown_text(value: object) -> str:
    """`value` as inert Markdown text on one line (for a heading, a sentence or a table cell)."""
    return _MARKDOWN_SPECIAL.sub(lambda match: _MARKDOWN[match[0]], str(value))


def spreadsheet_cell(text: str) -> str:
    """`text` for a CSV a person opens in a spreadsheet: a cell that would start a formula gets a
    leading `'` (one more, when it already opens with quotes before such a character), so the
    spreadsheet shows it as text. `from_spreadsheet` restores it exactly."""
    return re.sub(FORMULA_LEAD, r"'\1", text)


def from_spreadsheet(text: str) -> str:
    """The text `spreadsheet_cell` was given: one `'` removed from a cell it quoted."""
    return re.sub(QUOTED_FORMULA_LEAD, r"\1", text)
