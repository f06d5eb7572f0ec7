"""The ``featgen`` command: one module per subcommand, sharing :mod:`featgen.cli.common`."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
