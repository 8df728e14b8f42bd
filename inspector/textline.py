"""One line of text out of any value: control characters escaped, so a printed line stays one line.

Every line the product prints for a person or a line-reading script (``error: …`` lines, one line per event of
``inspector subscribe``, its notices) may carry text it did not write: a path given on the command line, a
camera name or topic from the wire (untrusted: any publisher can send one). A newline there split "exactly one
line" into two, or forged a second event line that scripts read as real; an ESC or CR rewrote the terminal.
Characters of Unicode category Cc (C0, DEL, C1) and the line/paragraph separators U+2028/U+2029 (which
``str.splitlines`` and many viewers also break at) are written as Python escapes (``\\n``, ``\\x1b``,
``\\u2028``). So are lone surrogates (U+D800-U+DFFF: a command-line path of bytes that are not UTF-8, which Python
decodes to them): no encoder writes them, and printing one to a UTF-8 stdout raised UnicodeEncodeError, a
traceback instead of the line. Log records are kept to one line the same way (:class:`OneLineRecords`).
Standard library only: the daemon and the subscriber use it.
"""

from __future__ import annotations

import logging
import math
import re

# Cc is exactly U+0000-U+001F and U+007F-U+009F (Unicode General Category); tab is kept: it does not break a line
_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    return repr(match.group())[1:-1]  # '\n' → \n, '\x1b' → \x1b, '\u2028' → \u2028


def one_line(text: object) -> str:
    """``str(text)`` with every line-breaking or terminal-controlling character escaped (see module docstring)."""
    text = str(text)
    return _BREAKING.sub(_escape, text) if _BREAKING.search(text) else text


# characters: a run without spaces longer than this is a value echoed whole, not a word; long enough for the
# deep paths of real installations (a path is clipped only past it)
LONG_RUN = 240
_LONG_RUN = re.compile(r"\S{%d,}" % (LONG_RUN + 1))
_PUNCT = "'\"()[]{}:,;."  # quotes and punctuation around an echoed value stay as written


def _clip(match: re.Match, keep: int) -> str:
    run = match.group()
    core = run.strip(_PUNCT)
    if len(core) <= LONG_RUN:
        return run
    lead = run[:len(run) - len(run.lstrip(_PUNCT))]
    tail = run[len(lead) + len(core):]
    return f"{lead}{core[:keep]}…[{len(core)} chars]…{core[-keep:]}{tail}"


def clip_long_runs(text: str, keep: int = 60) -> str:
    """``text`` with every run of more than ``LONG_RUN`` non-space characters (a value echoed from a config
    or a file: a 5,000-character texture name) cut to its first and last ``keep`` characters around
    ``…[N chars]…``: the message's own words around it (the key, what is wrong) stay readable and whole."""
    return _LONG_RUN.sub(lambda m: _clip(m, keep), text) if len(text) > LONG_RUN else text


# characters of an untrusted wire string kept in a line a person reads: room for any real camera name or run id
WIRE_TEXT_CHARS = 64


def wire_text(value: object, limit: int = WIRE_TEXT_CHARS) -> str:
    """An untrusted string from the wire (a camera name, a run id, a topic, a reason) for a line a person reads:
    :func:`one_line`, cut to its first ``limit`` characters followed by ``…(+N chars)``. A rogue publisher's
    10,000-character camera or run id was printed whole in every notice and event line. Cut before escaping,
    so an escape is never split; the escaped text is at most four times ``limit``."""
    text = str(value)
    if len(text) <= limit:
        return one_line(text)
    return f"{one_line(text[:limit])}…(+{len(text) - limit} chars)"


# Free-text identifiers a user gives that travel on: into every event and MQTT message (a model version), to a
# broker (an MQTT client id), into a file another program parses (a systemd unit's User=). Each has one rule:
# (pattern, the rule in words, why). Accepted whole before, a 10,000-character --model-version went into every
# event's header, and a --user with a newline wrote a line of its own into the unit file.
IDENTIFIERS: dict[str, tuple[re.Pattern, str]] = {
    # SemVer 2.0.0 §9-10 and PEP 440 local versions use these characters ('1.4.0-rc.1+line3'); 64 as camera names
    "model version": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z"),
                      "1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"),
    # MQTT 3.1.1 §3.1.3.1: every broker takes 1-23 letters and digits; most (Mosquitto) longer ones: 64 as box names
    "MQTT client id": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"),
                       "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (every broker takes "
                       "1-23 letters and digits)"),
    # systemd's user name syntax, strict (systemd.io/USER_NAMES: what every tool accepts), or a numeric user id
    "user name": (re.compile(r"(?:[A-Za-z_][A-Za-z0-9_-]{0,30}|[0-9]{1,10})\Z"),
                  "a user name of 1-31 letters, digits, '_' or '-', not starting with a digit or '-', or a numeric "
                  "user id"),
}


def identifier_problem(kind: str, text: str) -> str | None:
    """Why ``text`` is no ``kind`` (a key of :data:`IDENTIFIERS`), one phrase quoting at most 40 characters of it
    (escaped, :func:`one_line`); None when it is one."""
    pattern, rule = IDENTIFIERS[kind]
    if pattern.match(text):
        return None
    shown = one_line(text[:40]) + (f"... ({len(text)} characters)" if len(text) > 40 else "")
    return f"'{shown}' is not a valid {kind}: {rule}"


class OneLineRecords(logging.Filter):
    """A handler filter that makes each log record one line (:func:`one_line` of its message): a file name with a
    line break, put in a warning by a path argument or an f-string ('skipped 3 image(s) …; also e.g. a<LF>b.png',
    'left out, e.g. x<LF>y.gif') split it, and the second half read as a log line of its own, which a file name
    can forge ('x.png<LF>ERROR inspector.daemon: …'). A record made to span lines (a table, a traceback) says so
    with ``extra={"lines": True}``; a traceback attached by ``exc_info`` is the formatter's, not the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "lines", False):
            return True
        message = record.getMessage()
        if _BREAKING.search(message):
            record.msg, record.args = one_line(message), None
        return True


def one_line_log_handlers(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (default: the root logger) an :class:`OneLineRecords` filter (idempotent)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, OneLineRecords) for f in handler.filters):
            handler.addFilter(OneLineRecords())


def score_and_threshold(score: float | None, threshold: float) -> tuple[str, str]:
    """An event's score and threshold as shown to a person (``inspector subscribe``, the dashboard): 4 significant
    digits, more where 4 would read as the other side of the threshold (the daemon decides ``score >=
    threshold``): 'score 0.1527 (thr 0.1527) OK' was the good image a calibrated threshold sits one float32 step
    above. ``score`` None: "n/a"."""
    if score is None or not (math.isfinite(score) and math.isfinite(threshold)):
        return ("n/a" if score is None else f"{score:.4g}"), f"{threshold:.4g}"
    for digits in range(4, 18):
        shown = f"{score:.{digits}g}", f"{threshold:.{digits}g}"
        if (float(shown[0]) >= float(shown[1])) == (score >= threshold):
            return shown
    return repr(score), repr(threshold)
