"""RedBeat's own start-up over the benchmark's entries, for bench_cli.py.

Builds a Celery app whose ``beat_schedule`` holds every generated entry (Celery and RedBeat
schedule objects made from the YAML files), then runs what ``celery beat -S
redbeat.RedBeatScheduler`` runs when it starts: ``RedBeatScheduler(app)`` with ``lazy=False``
calls ``setup_schedule()``, which prunes old statics, ``update_from_dict(beat_schedule)``
(``from_key`` + ``save()`` per entry) and records the statics. No lock, no tick.

    .venv/bin/python bench/redbeat_startup.py FOLDER REDIS_URL
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from celery import Celery
from celery.schedules import crontab, schedule
from redbeat import RedBeatScheduler
from redbeat.schedules import rrule


def beat_schedule_entry(raw: dict) -> dict:  # type: ignore[type-arg]
    if "cron" in raw:
        minute, hour, day_of_month, month_of_year, day_of_week = raw["cron"].split()
        when: object = crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    elif "every" in raw:
        every = str(raw["every"])
        if not every.endswith("s"):
            raise SystemExit(f"unexpected every: {every}")
        when = schedule(timedelta(seconds=int(every[:-1])))
    else:
        rule = dict(raw["rrule"])
        rule["dtstart"] = datetime.fromisoformat(str(rule["dtstart"]))
        when = rrule(**rule)
    return {
        "task": raw["task"],
        "schedule": when,
        "args": tuple(raw.get("args", ())),
        "kwargs": raw.get("kwargs", {}),
        "options": raw.get("options", {}),
    }


def main() -> None:
    folder, url = Path(sys.argv[1]), sys.argv[2]
    entries = {}
    for path in sorted(folder.glob("*.yaml")):
        with path.open("rb") as stream:
            document = yaml.load(stream, Loader=yaml.CSafeLoader)
        for name, raw in document["schedules"].items():
            entries[name] = beat_schedule_entry(raw)
    app = Celery("bench", broker=url)
    app.conf.update(redbeat_redis_url=url, timezone="UTC", beat_schedule=entries)
    RedBeatScheduler(app=app, lazy=False)
    print(len(entries))


if __name__ == "__main__":
    main()
