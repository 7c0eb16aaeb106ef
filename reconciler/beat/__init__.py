"""Celery's and RedBeat's own code behind the core's questions: schedule objects, fire
times, cron and interval parsing, RedBeat's encodings (redbeat_rules implements BeatRules)."""
