"""One module per subcommand: each reads its request and returns an exit code."""
