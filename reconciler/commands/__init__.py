"""One module per subcommand, each a plain function that returns the exit code."""
