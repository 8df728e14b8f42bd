"""`inspector <command>`: one subcommand per mode.

Each command lives in ``inspector.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func``. Commands are
imported lazily by name so ``inspector subscribe`` never pays for torch.
User errors (:class:`InspectorError`) print one line and exit 2 (one: a newline in a path is escaped); so does an
OSError that names a file (a full disk, an output made unwritable while a command
ran): the file and what the system said, and one about the machine's storage that names none
(a full disk found by write() or close(): :data:`STORAGE_ERRNOS`): the command and what the system said. ``--debug`` shows the traceback. The library names the field an error is about; the one
mapping from fields to flags is the command's parser itself (an option's
``dest`` is the library's field name), read by :func:`user_message`.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import os
import sys
import threading

from inspector import __version__, lifecycle
from inspector.commands.argtypes import check_outputs_spare_inputs
from inspector.errors import InspectorError
from inspector.interrupts import CommandStops, sigterm_as_interrupt
from inspector.interrupts import exit_code as interrupt_exit_code
from inspector.redact import redact, redact_log_handlers
from inspector.textline import clip_long_runs, one_line, one_line_log_handlers

# name → (module, one-line help); order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("inspector.commands.data", "create or inspect datasets (e.g. 'data synth')"),
    "train": ("inspector.commands.train", "train an anomaly model on good images"),
    "evaluate": ("inspector.commands.evaluate", "evaluate a trained run on a test set"),
    "export": ("inspector.commands.export", "export a run to ONNX (FP32 + FP16) with a sidecar"),
    "predict": ("inspector.commands.predict", "score images with an exported model"),
    "quantize": ("inspector.commands.quantize", "make an INT8 Q/DQ ONNX from calibration images"),
    "enroll": ("inspector.commands.enroll", "enrol normal images of a new surface into a meta-comparer graph"),
    "build": ("inspector.commands.build", "build a TensorRT engine from an ONNX graph"),
    "verify": ("inspector.commands.verify", "precision gate: compare a candidate with the FP32 reference"),
    "calibrate": ("inspector.commands.calibrate", "choose thresholds on good parts with the deployed backend"),
    "run": ("inspector.commands.run", "run the inspection daemon"),
    "subscribe": ("inspector.commands.subscribe", "print defect events published by a daemon"),
    "bench": ("inspector.commands.bench", "benchmark a model or engine"),
    "demo": ("inspector.commands.demo", "the whole product offline: data, train, export, calibrate, run"),
    "service": ("inspector.commands.service", "install the daemon as a systemd service"),
}


LONG_RUNNING = ("run",)  # commands whose SIGINT/SIGTERM is an orderly stop from the first instruction
# commands that handle SIGINT/SIGTERM themselves while they run (exit 0 after Ctrl-C, 143 after SIGTERM): a stop
# before they take the signals is 'interrupted' (130/143), one after they hand them back keeps that status
OWN_STOPS = ("subscribe",)


def _available_commands() -> dict[str, tuple[str, str]]:
    return {n: v for n, v in COMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


def _add_global_options(parser: argparse.ArgumentParser, default=False) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="verbose logging, including library messages (OpenCV, FFmpeg, ONNX Runtime)")


def _accept_global_options(parser: argparse.ArgumentParser) -> None:
    """Let ``--debug``/``-v`` follow the subcommand too (``inspector train -v``), at any depth.

    Sub-parsers default to SUPPRESS so an option given before the subcommand is not
    reset to False by the sub-parser (a known argparse pitfall).
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if child.add_help:  # placeholders of commands not loaded have no options
                    _add_global_options(child, default=argparse.SUPPRESS)
                    _accept_global_options(child)
class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what and where), exit 2, like every other user error, and a
    mistyped command, sub-command, option or choice gets a "did you mean" (as config keys do; Python 3.14's
    ``suggest_on_error``, done here for 3.10-3.13 with :func:`difflib.get_close_matches`)."""

    def error(self, message: str):  # noqa: D102 - argparse API
        unknown = unknown_option_line(self, getattr(self, "_given", ()))
        if unknown and message.startswith("the following arguments are required"):
            message = unknown  # a misspelt required option (--ot for --out) is the cause, not the missing one
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        # remembered for error(): a sub-parser is handed only its own words (argparse's _SubParsersAction)
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # told by the (sub-)command they were given to, whose options the suggestion comes from
            selected_parser(self, parsed).error(unknown_option_line(selected_parser(self, parsed), extras)
                                                or f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _check_value(self, action, value):  # argparse's one check of a value against choices
        if action.choices is not None and value not in action.choices:
            close = did_you_mean(str(value), [str(c) for c in action.choices])
            if isinstance(action, argparse._SubParsersAction):
                kind = (action.metavar or action.dest or "command").strip("<>")
                raise argparse.ArgumentError(None, f"unknown {kind} {value!r}{close}")
            choices = ", ".join(repr(c) for c in action.choices)
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{close} (choose from {choices})")
        super()._check_value(action, value)


def did_you_mean(word: str, candidates) -> str:
    """`` (did you mean 'train'?)`` for the closest of ``candidates`` (difflib's ratio >= 0.6), else ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_option_line(parser: argparse.ArgumentParser, words) -> str | None:
    """"unknown option '--epohcs' (did you mean '--epochs'?)" for the first of ``words`` that looks like
    a long option ``parser`` does not know (neither its name nor a prefix of one, as argparse abbreviates), or
    None when every option is known. Words after ``--`` are positionals (argparse's rule)."""
    words = list(words)
    known = list(parser._option_string_actions)
    for at, word in enumerate(words):
        if word == "--":
            return None
        name = word.split("=", 1)[0]
        if name.startswith("--") and not any(k == name or k.startswith(name) for k in known):
            return f"unknown option {name!r}{did_you_mean(name, [k for k in known if k.startswith('--')])}"
    return None


def selected_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest (sub-)parser ``args`` chose: ``inspector data synth …`` → the parser of ``data synth``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            child = action.choices.get(getattr(args, action.dest, None) or "")
            if child is not None:
                return selected_parser(child, args)
    return parser


def flag_for(parser: argparse.ArgumentParser, command: str | None, field: str) -> str | None:
    """The command-line spelling of library field ``field`` for ``command``: its option's long flag
    (``max_batch`` → ``--max-batch``), a positional's metavar, or None if the command has no such option."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    child = sub.choices.get(command) if sub is not None and command else None
    return _flag_in(child if child is not None else parser, field)


def _flag_in(parser: argparse.ArgumentParser, field: str) -> str | None:
    for action in parser._actions:  # the command's own options, then those of its subcommands (data synth)
        if action.dest == field:
            longs = [o for o in action.option_strings if o.startswith("--")]
            return (longs or action.option_strings or [action.metavar or action.dest])[0]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found = _flag_in(child, field)
                if found:
                    return found
    return None


def command_actions(parser: argparse.ArgumentParser, command: str | None) -> list[argparse.Action]:
    """The arguments of ``command``, its subcommands' included (``data synth``), or of ``parser`` itself."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    child = sub.choices.get(command) if sub is not None and command else None
    return _actions_in(child if child is not None else parser)


def _actions_in(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                found += _actions_in(child)
        else:
            found.append(action)
    return found


def user_message(exc: InspectorError, parser: argparse.ArgumentParser | None, command: str | None) -> str:
    """The one line a user sees: the library's message, with its field named as the user typed it."""
    flag = flag_for(parser, command, exc.field) if parser is not None and exc.field else None
    return exc.message_with(flag) if flag else str(exc)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, import just that command's module."""
    parser = OneLineParser(prog="inspector", description="Real-time visual inspection.")
    parser.add_argument("--version", action="version", version=f"inspector {__version__}")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, help_text) in _available_commands().items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    _accept_global_options(parser)
    return parser


def configure_logging(verbose: bool) -> None:
    """inspector's own INFO lines always; other libraries' only with ``-v`` (warnings and up otherwise).

    Native libraries log to stderr by themselves: OpenCV and its FFmpeg back end read
    their levels from the environment when cv2 is first imported (set here, before any
    import of cv2); ONNX Runtime sessions are made with severity "error" by the backend.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from inspector.integrations.systemd import use_journald_format_if_journal

    use_journald_format_if_journal()  # under systemd: <priority> prefixes, journald adds the time
    redact_log_handlers()  # no log line shows a password from a camera's or broker's address
    one_line_log_handlers()  # nor is split in two by a file name with a line break in it
    logging.getLogger("inspector").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET: no FFmpeg demuxer chatter
        os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``inspector`` console script (``argv`` None: the process's own, and ``main`` runs the
    whole process)."""
    process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in OWN_STOPS:  # a stop outside the command's own handling keeps its status (CommandStops)
        with CommandStops(process=process) as stops:
            return stops.status(_main(argv, command))
    if command in LONG_RUNNING:
        return _main(argv, command)
    # every other command: SIGTERM too is a KeyboardInterrupt (Terminated), so what the command was writing is
    # taken back on the way out (a staging folder, a temporary file), 'interrupted', exit 143; it killed the
    # process on the spot and an export stopped by 'kill' left its staging folder of half-written graphs behind
    with sigterm_as_interrupt():
        return _main(argv, command)


def _main(argv: list[str], command: str | None) -> int:
    if command in LONG_RUNNING and threading.current_thread() is threading.main_thread():
        lifecycle.install()  # a stop during start-up is orderly too (see inspector.lifecycle)
    debug = "--debug" in argv
    parser = None
    try:
        # Before any command module is imported: OpenCV reads its log level when first imported.
        configure_logging(verbose=any(a in ("-v", "--verbose") for a in argv))
        parser = build_parser(only=command if command in COMMANDS else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # a usage error (one line printed) or --help / --version
            return exc.code if isinstance(exc.code, int) else 2
        if not getattr(args, "func", None):  # no (sub-)command: a usage error, its list on stderr (argparse: 2)
            selected_parser(parser, args).print_help(sys.stderr)
            return 2
        check_outputs_spare_inputs(command_actions(parser, args.command), args)
        return int(run_command(args, debug) or 0)
    except InspectorError as exc:
        if debug:
            raise
        print(f"error: {one_line(redact(user_message(exc, parser, command)))}", file=sys.stderr)
        return 2
    except OSError as exc:
        # no file named and not the machine's storage: not the user's disk, maybe ours (a traceback)
        if debug or (exc.filename is None and exc.errno not in STORAGE_ERRNOS):
            raise
        print(f"error: {one_line(os_error_line(exc, command))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        return interrupt_exit_code(exc)


# run drains native output itself (naming cameras); subscribe and service decode nothing; bench --suite runs the
# benchmark scripts as child processes, whose output (progress, tables) is the user's, not a library's
NATIVE_OWN = ("run", "subscribe", "service", "bench")
OFFLINE_CODECS = ("libpng", "libjpeg", "opencv")  # their complaints about a file: its own error line names it


def run_command(args: argparse.Namespace, debug: bool = False):
    """``args.func(args)`` with what native libraries print to descriptors 1 and 2 (libpng's "libpng error:
    Invalid IHDR data" for a 0-width PNG, printed while a data set's decode threads run) turned into log records
    (:class:`inspector.native_output.NativeOutput`): the decoders' lines at DEBUG (``-v``), the skipped file
    being told by the command in one line; any other native line a WARNING record. With ``--debug`` the
    descriptors are left alone, so nothing (a native abort's message, faulthandler's dump) can be held in the
    pipe; Python's tracebacks never go through it (sys.stderr keeps the original descriptor).
    """
    if debug or args.command in NATIVE_OWN:
        return args.func(args)
    from inspector.native_output import NativeOutput

    with NativeOutput(quiet=OFFLINE_CODECS):
        return args.func(args)


# errno values that say the machine could not store what a command wrote: a full disk or quota, a failing or
# read-only device, a file over the size limit (errno(3)). write() and close() raise them naming no file (a full
# disk is found when the data is written, not when the file is opened), so they are told by the command instead.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})


def os_error_line(exc: OSError, command: str | None = None) -> str:
    """The one line for an OSError about a file the library did not foresee (a full disk, a folder that
    turned read-only, a name that became a folder meanwhile): what the system said, and which file (or, when
    the system named none, which command's output)."""
    if exc.filename is None:
        return f"inspector {command or ''}: cannot write its output: {exc.strerror or type(exc).__name__}"
    where = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else str(exc.filename)
    # a name of thousands of characters (ENAMETOOLONG) is cut in its middle: the reason stays on the line
    return clip_long_runs(f"{where}: {exc.strerror or type(exc).__name__}")
