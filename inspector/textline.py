"""One line of text out of any value: control characters escaped, so a printed line stays one line.

Every line the product prints for a person or a line-reading script (``error: …`` lines, one line per event of
``inspector subscribe``, its notices) may carry text it did not write: a path given on the command line, a
camera name or topic from the wire (untrusted: any publisher can send one). A newline there split "exactly one
line" into two, or forged a second event line that scripts read as real; an ESC or CR rewrote the terminal.
Characters of Unicode category Cc (C0, DEL, C1) and the line/paragraph separators U+2028/U+2029 (which
``str.splitlines`` and many viewers also break at) are written as Python escapes (``\\n``, ``\\x1b``,
``\\u2028``). Standard library only: the daemon and the subscriber use it.
"""

from __future__ import annotations

import re

# Cc is exactly U+0000-U+001F and U+007F-U+009F (Unicode General Category); tab is kept: it does not break a line
_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    return repr(match.group())[1:-1]  # '\n' → \n, '\x1b' → \x1b, '\u2028' → \u2028


def one_line(text: object) -> str:
    """``str(text)`` with every line-breaking or terminal-controlling character escaped (see module docstring)."""
    text = str(text)
    return _BREAKING.sub(_escape, text) if _BREAKING.search(text) else text
