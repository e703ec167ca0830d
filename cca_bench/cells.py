"""Table cells that stay inert: CSV cells a spreadsheet will not run, markdown cells that stay one cell of text.

Every CSV and markdown table the suite writes (``compare --csv``, RESULTS.csv, RESULTS.md, ``/leaderboard.csv``,
run tables, search hits) passes its cells through these two functions; a method name, tag or label comes from
the user or from a shared run file and must not become a formula, a column or HTML.
"""

from __future__ import annotations

import re

# OWASP "CSV injection": a cell starting with one of these is a formula (or DDE) in Excel, LibreOffice and Sheets
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# a plain decimal number (what our numeric cells hold, e.g. a delta of -1.5): a spreadsheet reads it as a number
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value):
    """``value`` unchanged unless it is text that starts like a formula and is not a plain number; then the text
    behind a single quote (OWASP's rule: ``=HYPERLINK(..)`` -> ``'=HYPERLINK(..)``, ``+1+1`` -> ``'+1+1``; ``-1.5``
    stays ``-1.5``). Numbers (int, float) and missing values are never touched, so numeric columns stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def md_cell(text) -> str:
    """``text`` as the content of one GitHub-markdown table cell: ``|`` escaped (no extra columns), ``<``, ``>`` and
    ``&`` as entities (no HTML passes through the table), line breaks as spaces (no extra rows)."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text
