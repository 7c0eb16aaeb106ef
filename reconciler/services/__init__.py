"""The commands' work, in order: load the files, read the store, ask the core, write,
record (apply, drift check and fix, export, saved plans, alerts, metrics)."""
