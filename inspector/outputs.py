"""Where a command or the daemon will write: checked before any work, so a bad place fails in one line.

A folder that is in fact a file, a file name that is an existing folder, or a path that runs through a
file (``notes.txt/report.json``) otherwise surfaces as an OSError after minutes of training, or, in the
daemon, as an error logged at shutdown while the run itself "succeeds" (no summary, no recordings).
Nothing is created here: ``--check`` and argument parsing leave the disk as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from inspector.errors import InspectorError
from inspector.mounts import KERNEL_TYPES, path_fs_type


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """Untrusted text (a wire string, a folder's name) as one harmless file-name part: no separators, no dots (so
    no '..'), at most ``limit`` characters; '_' when nothing is left."""
    return _UNSAFE.sub("_", str(text))[:limit].strip("_") or "_"


def _kernel_file_system_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold our files because it lies on a kernel file system (None: it does not). access(2)
    tells a root user that /proc and /sys are writable, so --check passed a recorder.dir there and the run lost
    every recording (mkdir: ENOENT), or a summary_json over a kernel setting such as drop_caches."""
    kind = path_fs_type(path)
    return f"{path} is on a {kind} file system of the kernel, which keeps no files" if kind in KERNEL_TYPES else None


def _on_read_only_file_system(path: str | Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (statvfs(3) ST_RDONLY); False when it cannot be
    asked (missing)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_only_folder(path: str | Path) -> bool:
    """Whether ``path`` is an existing folder that cannot be written in only because its file system is mounted
    read-only: a state of the disk, which may be remounted writable while a daemon runs, not a wrong path (a kernel
    file system, sysfs mounted ro in a container, is one: it never keeps files)."""
    return os.path.isdir(path) and _on_read_only_file_system(path) and _kernel_file_system_problem(Path(path)) is None


def _write_refused(path: Path) -> str:
    """Why access(2) refused writing at ``path``: ``read-only file system`` where the file system is mounted read-only
    (a USB disk mounted ro after a bad eject, a share exported ro, a disk the kernel remounted ro after errors), else
    ``permission denied``. Both were told as "permission denied", and the operator changed permissions, which cannot
    help, instead of remounting the disk."""
    return "read-only file system" if _on_read_only_file_system(path) else "permission denied"


def _ancestor_problem(path: Path) -> str | None:
    """Why nothing can be created at ``path`` because of what is above it (None: nothing in the way)."""
    for parent in path.parents:
        if parent.is_dir():
            writable = os.access(parent, os.W_OK | os.X_OK)
            return None if writable else f"cannot write in {parent} ({_write_refused(parent)})"
        if parent.exists() or parent.is_symlink():
            return f"{parent} is a file, not a folder"
    return None


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder to write in, one phrase; None when it can."""
    path = Path(path)
    if (why := _kernel_file_system_problem(path)) is not None:
        return why
    if path.is_dir():
        return None if os.access(path, os.W_OK | os.X_OK) else f"cannot write in {path} ({_write_refused(path)})"
    if path.exists() or path.is_symlink():
        return f"{path} exists and is not a folder"
    return _ancestor_problem(path)


def file_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at ``path``, one phrase; None when it can (an existing file is replaced).

    Only a regular file is replaced: outputs are written in place or renamed over the old file, so a device,
    pipe or socket there is refused (``subscribe --state /dev/null`` renamed its state over /dev/null, which a
    root user then lost for the whole machine; reading ``--state /dev/zero`` back never ended, until the
    kernel killed the subscriber for memory; a pipe blocked it for good).
    """
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder, not a file name"
    if (why := _kernel_file_system_problem(path)) is not None:
        return why
    if path.exists() and not path.is_file():
        return f"{path} is not a regular file (a device, pipe or socket)"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"cannot write {path} ({_write_refused(path)})"
    if path.is_symlink():  # written in place, a dangling link makes its target (anywhere) or fails (ENOENT)
        return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"
    return _ancestor_problem(path)


def claim_outputs(where: str | Path, names: Sequence[Path], card: Path, files_of_card: Callable[[Any], set[str] | None],
                  error: type[Exception], *, command: str, card_noun: str, file_noun: str) -> None:
    """Make sure ``inspector COMMAND`` may write its set of files at ``names`` (all in ``card``'s folder), and make
    the folder: raise ``error`` with one line naming the file or folder otherwise. Checked before any work.

    The folder must be one that can be made and written in (``where``, the output asked for, names it in the line).
    Each name must be free or hold a file of an earlier run of the command, which the new set replaces as a whole:
    an earlier run is known by its card ``card`` (one of ``names``, the file that marks the set complete), and
    ``files_of_card`` takes the card's JSON and gives the names of the files it names (None: not such a card,
    e.g. the user's own JSON). Anything else at a name (a user's file, a file from elsewhere, a file its card
    does not name, a link, a folder) was replaced without a word; ``card_noun``/``file_noun`` name the card and
    its files in the line (export: "sidecar", "graph"; build: "engine card", "file")."""
    if (why := folder_problem(card.parent)) is not None:
        raise error(f"{where}: cannot {command} there: {why}")
    if (long := next((path for path in names if len(os.fsencode(path.name)) > NAME_MAX), None)) is not None:
        # the longest of the set's names (``.fp16.onnx``, ``.build.log``) failed late, as "File name too long" of a
        # hidden temporary, after the work; the name the user gave was legal, a name made from it was not
        raise error(f"{where}: cannot {command} there: its file {long.name} would be {len(os.fsencode(long.name))} "
                    f"bytes long, more than the {NAME_MAX} a file name may have; --out a shorter name")
    tail = f"{command} replaces only its own files: --out another name, or move it"
    present = [path for path in names if os.path.lexists(path)]
    odd = next((path for path in present if path.is_symlink() or not path.is_file()), None)
    if odd is not None:
        kind = "a symbolic link" if odd.is_symlink() else "not a file"
        raise error(f"{odd}: {kind}, not a file of an earlier {command}; {tail}")
    own = _files_of_card(card, files_of_card) if present else set()
    if own is None and card in present:
        article = "an" if card_noun[:1] in "aeiou" else "a"
        raise error(f"{card}: exists and is not {article} {card_noun} written by 'inspector {command}'; {tail}")
    if foreign := [path for path in present if path != card and path.name not in (own or ())]:
        raise error(f"{foreign[0]}: exists and is not a {file_noun} of an earlier {command} (no {card_noun} "
                    f"{card.name} naming it); {tail}")
    card.parent.mkdir(parents=True, exist_ok=True)


def claim_file(path: str | Path, own: Callable[[bytes], bool], error: type[Exception], *, command: str,
               option: str, noun: str) -> bool:
    """Make sure ``inspector COMMAND`` may write its one output file ``path`` (``verify --report``, ``bench --json``,
    ``calibrate --out``): True when an earlier one of its own is there, which the new file replaces (whole: it is
    written through :func:`write_whole`) and the command's last line says so; False when the name is free.
    Raise ``error``, one line naming the file, for anything else there, checked before any work.

    The rule of every output of the product (export, build, quantize: :func:`claim_outputs`; ``service install``):
    a command replaces its own earlier output, the normal way to run it again, and nothing else. ``own(first
    bytes)`` tells an earlier output of the command by its content (a calibration YAML, a report's keys): a
    daemon config, a colleague's notes or another command's report given by mistake as ``option`` was replaced
    without a word, after minutes of work. A link or a non-file is refused as in :func:`claim_outputs`.
    ``noun``: what the command writes ("calibration file"), in the line."""
    path = Path(path)
    if not os.path.lexists(path):
        return False
    tail = f"'inspector {command}' replaces only its own files: {option} another name, or move it"
    article = "an" if noun[:1] in "aeiou" else "a"
    if path.is_symlink() or not path.is_file():
        kind = "a symbolic link" if path.is_symlink() else "not a file"
        raise error(f"{path}: {kind}, not {article} {noun} of an earlier '{command}'; {tail}")
    try:
        with open(path, "rb") as fh:
            ours = bool(own(fh.read(1 << 24)))  # reports and calibrations are a few kB
    except Exception:  # noqa: BLE001 - whatever a foreign file makes the reader raise, it is not ours
        ours = False
    if not ours:
        raise error(f"{path}: exists and is not {article} {noun} written by 'inspector {command}'; {tail}")
    return True


def _files_of_card(card: Path, files_of_card: Callable[[Any], set[str] | None]) -> set[str] | None:
    """``files_of_card`` of the JSON in ``card``; None when it is missing or not JSON."""
    try:
        with open(card, "rb") as fh:
            data = json.loads(fh.read(1 << 24))  # cards are a few kB
    except (OSError, ValueError, RecursionError):
        return None
    return files_of_card(data)


def link_new(tmp: Path, path: Path) -> None:
    """Give the file ``tmp`` the name ``path``; FileExistsError when it is taken (never replaces a file). Where
    the file system has no hard links (FAT, some network shares) it is renamed, after checking the name is free."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.rename(tmp, path)


NAME_MAX = 255  # bytes in one file name on Linux's file systems (ext4, XFS, btrfs, tmpfs; limits.h)
_WHOLE_ROOM = len(".") + len(".") + 10 + len(".tmp")  # a pid has at most 10 digits


def cut_name(name: str, room: int) -> str:
    """``name`` cut so that ``room`` more bytes still fit in one file name (:data:`NAME_MAX`), for the hidden
    names made from an output's name (temporaries, backups, staging folders): a name the user may give, up to 255
    bytes, made them too long ("File name too long") and the write failed although its own name was legal.
    Counted in bytes as the file system sees them (``os.fsencode``), cut between characters."""
    budget = NAME_MAX - room
    if len(os.fsencode(name)) <= budget:
        return name
    used, kept = 0, []
    for char in name:
        used += len(os.fsencode(char))
        if used > budget:
            break
        kept.append(char)
    return "".join(kept)


def whole_temporary(path: str | Path, pid: int | None = None) -> Path:
    """The hidden temporary file :func:`write_whole` writes ``path`` through, by process ``pid`` (default: this
    one): ``dir/.NAME.PID.tmp``, NAME cut (:func:`cut_name`) where the whole would pass NAME_MAX."""
    path = Path(path)
    return path.with_name(f".{cut_name(path.name, _WHOLE_ROOM)}.{os.getpid() if pid is None else pid}.tmp")


def whole_temporaries(path: str | Path) -> re.Pattern:
    """The names of :func:`write_whole`'s temporaries of ``path`` (group 1: the writer's pid), for
    :func:`inspector.leftovers.remove_leftovers` after a writer killed mid-write."""
    return re.compile(rf"^\.{re.escape(cut_name(Path(path).name, _WHOLE_ROOM))}\.(\d{{1,10}})\.tmp\Z", re.ASCII)


def write_whole(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a hidden temporary file beside it, on disk (fsync,
    unless ``durable`` is False), then renamed over ``path``. A full disk, an error or Ctrl-C part-way leaves
    what was there (or nothing), never half a file, and no temporary file. (A sidecar written in place was cut
    short by a full disk: the export beside it, complete before, could no longer be loaded.) ``durable=False``
    is for a file rewritten per message, where an fsync each time (milliseconds on an SD card) would cost more
    than a power cut's loss of the last rewrite. An OSError names ``path`` (never the temporary, never none)."""
    path = Path(path)
    tmp = whole_temporary(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the error that stopped the write is the one to tell
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp), tmp):
            # write() and fsync() name no file (a full disk shows there), open() names the hidden temporary: the
            # line named neither the output ("cannot write its output") or one the user never asked for
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextlib.contextmanager
def named_as_outputs(staging: str | Path, folder: str | Path) -> Iterator[None]:
    """Errors raised in the block name the user's outputs, never the hidden ``staging`` folder they are made in:
    a path under ``staging`` in an OSError (``filename``, ``filename2``) or an InspectorError's line becomes the
    same name under ``folder``, where the file was to go. ``export`` on a full disk said
    ``out/.rs-4mq7_lpm/rs.onnx: …``, a name the user never gave and that is gone once the command ends."""
    staging, folder = Path(staging), Path(folder)

    def mapped(name: object) -> object:
        if not isinstance(name, (str, os.PathLike)):
            return name
        try:
            return str(folder / Path(name).relative_to(staging))
        except ValueError:
            return name

    try:
        yield
    except OSError as exc:
        if mapped(exc.filename) == exc.filename and mapped(exc.filename2) == exc.filename2:
            raise
        raise OSError(exc.errno, exc.strerror, mapped(exc.filename), None, mapped(exc.filename2)) from exc
    except InspectorError as exc:
        if exc.args and isinstance(exc.args[0], str) and str(staging) in exc.args[0]:
            exc.args = (exc.args[0].replace(str(staging), str(folder)), *exc.args[1:])
        raise


@contextlib.contextmanager
def new_folders_removed_on_failure(folder: str | Path) -> Iterator[None]:
    """The folders of ``folder``'s path that do not exist before the block (it may make them) are removed again
    when the block fails (an error, Ctrl-C), deepest first, each only while it is empty: a failed command
    leaves nothing new behind. ``evaluate --out new/eval`` on a full disk left an empty ``new/eval``, read
    afterwards as an evaluation that had run."""
    folder = Path(folder)
    missing = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first; a folder that holds something now is someone's: kept, with those above
            try:
                os.rmdir(path)
            except OSError:
                break
        raise


def replace_together(moves: list[tuple[Path | None, Path]], scratch: Path) -> None:
    """Give each target its new file, in order (``(new, target)``; ``new`` None: the target is removed), all or
    none: for outputs whose files only make sense together (graphs and the sidecar holding their sha256).

    Each old file is first kept as a second name in ``scratch`` (a folder on the targets' file system, e.g. the
    staging folder), then the new one renamed over it: readers see the old file or the new, never none. On any
    error or Ctrl-C part-way every target gets back what it held (one absent before is removed) and the exception
    goes on. Put the file that marks the set complete (a sidecar) last: a reader never finds it ahead of its
    files. Before, graphs were moved in one by one and the sidecar written after: an error or Ctrl-C between
    left the new graphs beside the old sidecar, and the earlier export, complete, was gone."""
    done: list[tuple[Path | None, Path, Path]] = []
    try:
        for new, target in moves:
            backup = scratch / f".old-{len(done)}-{cut_name(target.name, 16)}"
            done.append((new, target, backup))
            if os.path.lexists(target):
                _keep(target, backup)
            if new is not None:
                os.replace(new, target)
            elif os.path.lexists(target):
                os.unlink(target)
    except BaseException:
        _put_back(done)
        raise


def _keep(target: Path, backup: Path) -> None:
    """A second name ``backup`` for ``target`` (a hard link, the link itself if it is one); where the file system
    has none (FAT, some shares) ``target`` is moved there, and :func:`_put_back` moves it back on a failure."""
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError:
        os.rename(target, backup)


def _put_back(done: list[tuple[Path | None, Path, Path]]) -> None:
    """Undo :func:`replace_together`'s moves, last first: each target gets its kept old file back, or, absent
    before, loses the new one. Best effort: an error here must not hide the one that stopped the moves."""
    for new, target, backup in reversed(done):
        try:
            if os.path.lexists(backup):
                os.replace(backup, target)
            elif new is not None and not os.path.lexists(new):  # moved in where nothing was
                os.unlink(target)
        except OSError:
            pass
