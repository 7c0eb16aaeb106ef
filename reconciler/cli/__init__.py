"""The command line: commands and exit codes (main), shared options (options), options to
requests (settings), one module per command (commands/)."""

from reconciler.cli.main import main

__all__ = ["main"]
