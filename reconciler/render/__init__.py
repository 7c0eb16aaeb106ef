"""Renderers: pure functions from results to text; only the CLI prints."""
