"""``featgen``'s parser and entry point.

Errors caused by input (FeatgenError) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import FeatgenError
from . import cam, layers, maps, models, render

COMMANDS = (models, layers, maps, render, cam)  # each: NAME, HELP, add_arguments(parser), run(args)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="featgen", description="See what convolutional networks learn.")
    parser.add_argument("--version", action="version", version=f"featgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except FeatgenError as exc:
        print(f"featgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
