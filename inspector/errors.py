"""Typed user-facing errors.

Every error a user can cause (bad config, missing file, corrupt image, dead
camera, mismatched engine) is raised as an :class:`InspectorError` whose message
is one line naming *what* and *where*. The CLI prints that line without a
traceback unless ``--debug`` is given.

The library names *fields* (``max_batch must be ≥ 1``), never command-line
flags: an error about one argument or option carries its name in ``field``, and
the CLI, which alone knows the flags, swaps in the flag when it reports it
(:func:`inspector.cli.user_message`).
"""

from inspector.redact import redact
from inspector.textline import clip_long_runs, one_line

MAX_MESSAGE = 500  # characters: values quoted from a bad file or the wire can be arbitrarily long


class InspectorError(Exception):
    """Base class: a problem the user can fix, described in one line.

    The message is forced to that form whatever went into it: line breaks and other control characters are
    escaped (:func:`inspector.textline.one_line`: ``\\n``; a space left a file name ``a<LF>b.png`` ambiguous
    with ``a b.png``), a value echoed whole is cut in its middle (:func:`inspector.textline.clip_long_runs`:
    a 5,000-character value filled the line and pushed out what was wrong with it), credentials masked before
    (:func:`inspector.redact.redact`), and a message longer than ``MAX_MESSAGE`` characters (e.g. quoting a 100 kB value from a malformed file) is cut.
    ``field``: the parameter or option field the error is about (``"max_batch"``), named in the message.
    """

    def __init__(self, message: object = "", *args: object, field: str | None = None) -> None:
        if isinstance(message, str):
            # redacted before it is cut: a long URL cut in its middle ('?X-Amz-Signature=' among what was cut) left its
            # secrets past what the CLI's redact could tell for a URL's (a presigned URL runs to 400+ characters)
            message = clip_long_runs(one_line(redact(message)))
            if len(message) > MAX_MESSAGE:
                message = message[:MAX_MESSAGE - 3] + "..."
        super().__init__(message, *args)
        self.field = field

    def message_with(self, field_name: str) -> str:
        """The message with its field's name replaced by ``field_name`` (e.g. a command-line flag)."""
        text = str(self)
        if self.field is None or self.field not in text:
            return text
        return text.replace(self.field, field_name, 1)


class ConfigError(InspectorError):
    """Invalid configuration: unknown key, wrong type, bad value."""


class DataError(InspectorError):
    """Missing, unreadable or malformed data (images, masks, dataset folders)."""


class ModelError(InspectorError):
    """Model construction, weights or checkpoint problems."""


class ExportError(InspectorError):
    """ONNX export, sidecar or artifact-integrity problems."""


class BackendError(InspectorError):
    """Inference backend problems: wrong input, mismatched engine, runtime failure."""


class SourceError(InspectorError):
    """Camera / video source problems.

    ``permanent``: retrying cannot help (a recording that can never be decoded, an
    empty folder for a one-pass run) — the camera fails at once instead of
    reconnecting; transient errors (a network camera gone) are retried with back-off.
    """

    def __init__(self, message: str, permanent: bool = False, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.permanent = permanent
