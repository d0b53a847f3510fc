"""Transactional outputs: a command's outputs appear all complete, or not at all.

Every writer of tritforge (packed files, FP16 exports, packed model folders, reports,
JSON results, Verilog, synthesis and board builds) goes through ``atomic_file``,
``atomic_folder`` or ``atomic_merge``. Each stages its output under a staging folder
``.tritforge-stage-*`` beside the destination and hands it to the active
``Transaction``:

* the CLI opens one transaction per command (``transaction()``): every output of the
  command (all configs of ``quantize``, ``--json`` and ``--report`` together, both files of
  ``generate``) stays staged until the command has succeeded, then all are moved into place
  in one commit; on any error or interrupt the staging folders are removed and every
  destination is left as it was;
* outside a transaction (library use) each ``atomic_*`` block is its own transaction.

The commit renames each staged output over its destination (an existing output is moved
aside first and restored if a later rename fails) with SIGINT and SIGTERM blocked, so an
interrupt cannot fall between two renames; an existing output is replaced only by a
complete new one. A write whose path lies inside an output still being staged (the files
of a staged folder) is written there at once, atomically, as it is not visible yet.

Outputs get the mode a plain write would give them (``tempfile`` creates 0600 files and
0700 folders). Folders created only to hold a destination are removed again when the
transaction does not commit.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile

from .errors import TritforgeError

STAGE_PREFIX = ".tritforge-stage-"
_BLOCKED = {signal.SIGINT, signal.SIGTERM}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Transaction:
    """The staged outputs of one command and their all-or-nothing commit."""

    def __init__(self):
        self._stages: dict[str, str] = {}        # destination folder -> its staging folder
        self._entries: list[tuple[str, str, str]] = []   # (kind, staged path, destination)
        self._made: list[str] = []               # folders created to hold destinations
        self._count = 0
        #: all staged outputs are in place
        self.committed = False
        #: set by the CLI's signal handler: a transaction of an interrupted command never commits
        self.interrupted = None

    # --- staging -------------------------------------------------------------------------
    def _parent(self, dest: str) -> str:
        parent = os.path.dirname(dest)
        missing = []
        probe = parent
        while not os.path.isdir(probe):
            if os.path.lexists(probe):
                raise TritforgeError(f"{dest}: {probe} exists and is not a folder")
            missing.append(probe)
            probe = os.path.dirname(probe)
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue
            except OSError as exc:
                raise TritforgeError(f"{folder}: cannot create output folder ({exc.strerror})") from None
            self._made.append(folder)
        return parent

    def _stage(self, dest: str) -> str:
        parent = self._parent(dest)
        if parent not in self._stages:
            try:
                self._stages[parent] = tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=parent)
            except OSError as exc:
                raise TritforgeError(f"{dest}: cannot write ({exc.strerror})") from None
        self._count += 1
        return os.path.join(self._stages[parent], f"{self._count}-{os.path.basename(dest)}")

    def staging(self, path: str) -> bool:
        """Whether ``path`` lies inside one of this transaction's staged outputs."""
        path = os.path.abspath(path)
        return any(_inside(path, s) for s in self._stages.values())

    def _add(self, kind: str, staged: str, dest: str) -> None:
        for i, (k, s, d) in enumerate(self._entries):
            if d == dest:      # the same output written twice: the later one counts
                self._entries.pop(i)
                _remove(s)
                break
        self._entries.append((kind, staged, dest))

    def file(self, dest: str) -> str:
        """A staged path for the file ``dest`` (created empty)."""
        dest = os.path.abspath(dest)
        if os.path.isdir(dest):
            raise TritforgeError(f"{dest}: exists and is a folder, expected a file path")
        staged = self._stage(dest)
        try:
            with open(staged, "x"):
                pass
        except OSError as exc:
            raise TritforgeError(f"{dest}: cannot write ({exc.strerror})") from None
        self._add("file", staged, dest)
        return staged

    def folder(self, dest: str, merge: bool = False) -> str:
        """A staged folder for ``dest``: it replaces ``dest`` whole, or with ``merge`` each
        of its entries replaces the same-named entry of ``dest``."""
        dest = os.path.abspath(dest)
        if os.path.lexists(dest) and not os.path.isdir(dest):
            raise TritforgeError(f"{dest}: exists and is not a folder")
        staged = self._stage(dest)
        try:
            os.mkdir(staged)
        except OSError as exc:
            raise TritforgeError(f"{dest}: cannot write ({exc.strerror})") from None
        self._add("merge" if merge else "folder", staged, dest)
        return staged

    def discard(self, staged: str) -> None:
        """Drop one staged output (its writer failed and the caller goes on)."""
        for i, (_, s, _) in enumerate(self._entries):
            if s == staged:
                self._entries.pop(i)
                break
        _remove(staged)

    # --- commit / abort ------------------------------------------------------------------
    def _moves(self) -> list[tuple[str, str]]:
        """(staged, destination) renames of the commit; every destination checked first."""
        moves = []
        for kind, staged, dest in self._entries:
            if kind == "merge":
                if os.path.lexists(dest) and not os.path.isdir(dest):
                    raise TritforgeError(f"{dest}: exists and is not a folder")
                for name in sorted(os.listdir(staged)):
                    target, src = os.path.join(dest, name), os.path.join(staged, name)
                    if os.path.lexists(target) and os.path.isdir(target) != os.path.isdir(src):
                        raise TritforgeError(f"{target}: exists and is a "
                                             f"{'folder' if os.path.isdir(target) else 'file'}; cannot replace it")
                    moves.append((src, target))
            else:
                if kind == "file" and os.path.isdir(dest):
                    raise TritforgeError(f"{dest}: exists and is a folder, expected a file path")
                if kind == "folder" and os.path.lexists(dest) and not os.path.isdir(dest):
                    raise TritforgeError(f"{dest}: exists and is not a folder")
                moves.append((staged, dest))
        return moves

    def commit(self) -> None:
        """Move every staged output into place, all or none."""
        if self.interrupted is not None:
            raise Interrupted(self.interrupted)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            moves = self._moves()
            mode_file, mode_dir = 0o666 & ~_umask(), 0o777 & ~_umask()
            done = []          # (destination, its previous version moved aside or None)
            try:
                for staged, dest in moves:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    os.chmod(staged, mode_dir if os.path.isdir(staged) else mode_file)
                    aside = None
                    if os.path.lexists(dest):
                        aside = self._stage(dest) + ".old"
                        os.replace(dest, aside)
                    done.append((dest, aside))
                    os.replace(staged, dest)
            except (OSError, TritforgeError) as exc:
                for dest, aside in reversed(done):
                    _remove(dest)
                    if aside is not None:
                        os.replace(aside, dest)
                if isinstance(exc, TritforgeError):
                    raise
                raise TritforgeError(f"{exc.filename or moves[max(len(done) - 1, 0)][1]}: cannot write "
                                     f"({exc.strerror}); no output was written") from None
            self._made = []
            self.committed = True
        finally:
            self._cleanup()
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def abort(self) -> None:
        """Remove everything staged; every destination stays as it was."""
        self._cleanup()
        for folder in reversed(self._made):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        self._made = []

    def _cleanup(self) -> None:
        for stage in self._stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        self._stages, self._entries = {}, []


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (``signum``); a KeyboardInterrupt, so that nothing that
    catches ``Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_active: Transaction | None = None


def active() -> Transaction | None:
    """The transaction of the running command, if any."""
    return _active


@contextlib.contextmanager
def transaction():
    """All ``atomic_*`` outputs inside the block commit together when it ends without an
    error, or not at all."""
    global _active
    if _active is not None:         # nested: the outer transaction decides
        yield _active
        return
    tx = _active = Transaction()
    try:
        yield tx
        tx.commit()
    except BaseException:
        tx.abort()
        raise
    finally:
        _active = None


@contextlib.contextmanager
def scratch():
    """Working files of a command, not its outputs (a vector set or a build the command
    writes and then reads back itself): inside the block every ``atomic_*`` write commits
    at the end of its own block, outside the command's transaction."""
    global _active
    saved, _active = _active, None
    try:
        yield
    finally:
        _active = saved


@contextlib.contextmanager
def _staged(stage, path: str):
    """Run ``stage(tx, path)`` in the active transaction (or a transaction of its own) and
    yield the staged path; a failing block drops it."""
    tx = _active
    if tx is None:
        with transaction() as own:
            yield stage(own, path)
        return
    staged = stage(tx, path)
    try:
        yield staged
    except BaseException:
        tx.discard(staged)
        raise


@contextlib.contextmanager
def _local_file(path: str):
    """An immediate atomic write of a file inside a staged output."""
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(path):
        raise TritforgeError(f"{path}: exists and is a folder, expected a file path")
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _local_folder(path: str, merge: bool):
    """An immediate write of a folder inside a staged output."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise TritforgeError(f"{path}: exists and is not a folder")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(path)}-", dir=os.path.dirname(path))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if merge:
            os.makedirs(path, exist_ok=True)
            for name in os.listdir(tmp):
                if os.path.isdir(os.path.join(path, name)):
                    _remove(os.path.join(path, name))
                os.replace(os.path.join(tmp, name), os.path.join(path, name))
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            if os.path.lexists(path):
                _remove(path)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_file(path: str):
    """Yield a temporary path for the file ``path``; it becomes ``path`` when the command
    (or, outside a command, the block) succeeds."""
    path = os.path.abspath(path)
    if _active is not None and _active.staging(path):
        return _local_file(path)
    return _staged(lambda tx, p: tx.file(p), path)


def atomic_folder(path: str):
    """Yield a temporary folder that replaces the folder ``path`` when the command (or,
    outside a command, the block) succeeds; on any error ``path`` is left as it was."""
    path = os.path.abspath(path)
    if _active is not None and _active.staging(path):
        return _local_folder(path, merge=False)
    return _staged(lambda tx, p: tx.folder(p), path)


def atomic_merge(path: str):
    """Like ``atomic_folder``, but each entry written into the yielded folder replaces the
    same-named entry of ``path``; other entries of ``path`` stay (a report folder)."""
    path = os.path.abspath(path)
    if _active is not None and _active.staging(path):
        return _local_folder(path, merge=True)
    return _staged(lambda tx, p: tx.folder(p, merge=True), path)


def write_json(path: str, data) -> None:
    """Write ``data`` as indented JSON to ``path``, atomically."""
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
