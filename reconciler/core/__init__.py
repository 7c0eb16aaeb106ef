"""The pure core: desired and live state as values, the diff that turns them into a plan,
drift findings, the score policy and beat's clock. Imports no Redis, Celery, YAML, click or
pydantic (an import-linter contract checks it); Celery's and RedBeat's answers come in
through beat_rules.BeatRules."""
