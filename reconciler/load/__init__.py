"""Loading schedule files: discovery, safe YAML, the versioned format, desired entries."""
