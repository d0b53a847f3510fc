"""The one console script: ``tritforge <subcommand>``.

Each subcommand is a module in ``tritforge/commands/`` that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so adding a
command touches no other file. Bad input raises ``TritforgeError``: the CLI prints it as
one line on stderr and exits with status 2; so do argparse's usage errors (``Parser.error``).

Each command runs inside one output transaction (``atomic.transaction``): its outputs are
staged and appear only when it returns successfully. SIGINT and SIGTERM raise
``atomic.Interrupted`` in the command (the first one; later ones are only recorded), which
removes the staging folders on its way out; the CLI then prints one line and exits with
128 + the signal number (130, 143). So it ends too when a library turns the interrupt into
an error of its own, or when the signal lands in a finalizer, where Python cannot raise it
(it is delivered again a moment later).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: signals that arrived while the console script was still importing (before ``main``)
_EARLY: list[int] = []


def _record_early(signum, frame) -> None:
    _EARLY.append(signum)


# Run as the console script or ``python -m tritforge.cli``: from here on a signal is
# recorded, not raised, until ``main`` installs its handler and ends the command with one
# line (a signal before this point, during the interpreter's own start-up, still has its
# default effect). Imported as a library, the process's handlers are left alone.
if __name__ == "__main__" or os.path.basename(sys.argv[0] if sys.argv else "") == "tritforge":
    for _s in _SIGNALS:
        signal.signal(_s, _record_early)

from . import __version__, atomic, commands  # noqa: E402
from .errors import TritforgeError  # noqa: E402


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``tritforge <command>: error: ...``), exit 2."""

    def error(self, message):
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tritforge",
        description="Hardware co-design simulator and RTL generator for balanced-ternary LLMs.")
    parser.add_argument("--version", action="version", version=f"tritforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>", required=True)
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class _Signals:
    """SIGINT and SIGTERM as ``atomic.Interrupted`` in the main thread while a command runs."""

    def __init__(self):
        self.signum = None
        self._redeliver = False

    def __call__(self, signum, frame):
        # a redelivered signal raises unless an interrupt is already on its way out
        first = self.signum is None or (self._redeliver and not isinstance(sys.exception(), KeyboardInterrupt))
        self._redeliver = False
        self.signum = self.signum or signum
        tx = atomic.active()
        if tx is not None:
            tx.interrupted = self.signum      # it will never commit
        if first:
            raise atomic.Interrupted(signum)

    def settle(self) -> None:
        """The command has ended: a signal still to be delivered again is only recorded."""
        self._redeliver = False

    def _unraisable(self, previous):
        """An ``Interrupted`` raised where Python cannot propagate it (a finalizer or weakref
        callback, e.g. matplotlib's during a garbage collection) is not printed: the signal
        is delivered again a moment later (from a timer thread, so that the handler does not
        run inside this hook), and the handler raises it in the code running then."""
        def hook(unraisable):
            if isinstance(unraisable.exc_value, atomic.Interrupted):
                self._redeliver = True
                timer = threading.Timer(0.02, signal.raise_signal, (unraisable.exc_value.signum,))
                timer.daemon = True
                timer.start()
            else:
                previous(unraisable)
        return hook

    @contextlib.contextmanager
    def installed(self, restore: bool):
        """The handler while the command runs; afterwards the previous handlers (``restore``:
        a caller in the same process) or none: the console script only exits, and a signal
        during the interpreter's shutdown must not interrupt it halfway."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        saved = {s: signal.signal(s, self) for s in _SIGNALS}
        hook, sys.unraisablehook = sys.unraisablehook, self._unraisable(sys.unraisablehook)
        try:
            yield
        finally:
            # the console script interrupted exits next: an object the signal left half-built
            # (a library's import cut short, e.g. a parser grammar) may fail in its finalizer
            # at shutdown, and its "Exception ignored" lines would follow the one-line message
            sys.unraisablehook = hook if restore or self.signum is None else _silent
            for s, h in saved.items():
                signal.signal(s, h if restore else signal.SIG_IGN)


def _silent(unraisable) -> None:
    """An unraisable exception during an interrupted command's shutdown: not printed."""


def _interrupted(name: str, signum, tx) -> int:
    signum = signal.Signals(signum or signal.SIGINT)
    left = ("its outputs were complete and are in place" if tx is not None and tx.committed
            else "no output was written")
    print(f"{name}: interrupted by {signum.name}; {left}", file=sys.stderr)
    return 128 + int(signum)


def main(argv: list[str] | None = None) -> int:
    signals = _Signals()
    name, tx = "tritforge", None
    try:
        with signals.installed(restore=argv is not None):
            try:
                if _EARLY:          # interrupted while starting: nothing has run
                    raise atomic.Interrupted(_EARLY[0])
                args = build_parser().parse_args(argv)
                name = f"tritforge {args.command}"
                with atomic.transaction() as tx:
                    rc = int(args._run(args) or 0)
                if signals.signum is not None:       # swallowed by a library: still an interrupt
                    signals.settle()
                    raise atomic.Interrupted(signals.signum)
                return rc
            except TritforgeError as exc:
                print(f"{name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as exc:
                signals.settle()
                return _interrupted(name, getattr(exc, "signum", signals.signum), tx)
            except Exception:
                # a library that turned the handler's exception into its own error (matplotlib's
                # renderer raises ValueError when interrupted inside a draw): still an interrupt
                if signals.signum is None:
                    raise
                signals.settle()
                return _interrupted(name, signals.signum, tx)
    except KeyboardInterrupt:      # a second signal while the first was being handled
        return _interrupted(name, signals.signum, tx)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
