"""The one console script: ``tritforge <subcommand>``.

Each subcommand is a module in ``tritforge/commands/`` that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so adding a
command touches no other file. Bad input raises ``TritforgeError``: the CLI prints it as
one line on stderr and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import TritforgeError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tritforge",
        description="Hardware co-design simulator and RTL generator for balanced-ternary LLMs.")
    parser.add_argument("--version", action="version", version=f"tritforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>", required=True)
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except TritforgeError as exc:
        print(f"tritforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tritforge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
