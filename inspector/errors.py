"""Typed user-facing errors.

Every error a user can cause (bad config, missing file, corrupt image, dead
camera, mismatched engine) is raised as an :class:`InspectorError` whose message
is one line naming *what* and *where*. The CLI prints that line without a
traceback unless ``--debug`` is given.
"""


MAX_MESSAGE = 500  # characters: values quoted from a bad file or the wire can be arbitrarily long


class InspectorError(Exception):
    """Base class: a problem the user can fix, described in one line.

    The message is forced to that form whatever went into it: line breaks become spaces and a message
    longer than ``MAX_MESSAGE`` characters (e.g. quoting a 100 kB value from a malformed file) is cut.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        if isinstance(message, str):
            message = " ".join(message.split("\n")) if "\n" in message else message
            if len(message) > MAX_MESSAGE:
                message = message[:MAX_MESSAGE - 3] + "..."
        super().__init__(message, *args)


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

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
