"""The one adapter that speaks Redis: key names, pipelines, transactions, locks, history."""
