"""The command line: options and exit codes (main), one module per command (commands/)."""

from reconciler.cli.main import main

__all__ = ["main"]
