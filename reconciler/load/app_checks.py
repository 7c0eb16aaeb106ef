"""Checks of the desired entries against the team's real Celery app (``--app``).

What beat or a worker would only find at run time, found in review instead: a task name the
app does not register, arguments that do not bind to the task's signature (a TypeError at
3 a.m.), a queue the app does not declare (with Celery's default task_create_missing_queues,
messages would wait in a queue no worker consumes). Each problem points at the value.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.core.problems import Problem, SourceLocation

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from celery import Celery

    from reconciler.core.model import DesiredEntry


class AppChecks:
    """Check entries against one app, whose tasks are already imported and registered."""

    def __init__(self, app: Celery, app_name: str) -> None:
        self._app_name = app_name
        self._tasks: Mapping[str, Any] = dict(app.tasks)
        self._queues = declared_queues(app)

    def __call__(self, entries: Sequence[DesiredEntry]) -> list[Problem]:
        return [problem for entry in entries for problem in self.entry_problems(entry)]

    def entry_problems(self, entry: DesiredEntry) -> Iterator[Problem]:
        task = self._tasks.get(entry.task)
        if task is None:
            close = difflib.get_close_matches(entry.task, list(self._tasks), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            yield Problem(
                _at(entry, "task"),
                f"schedule '{entry.name}': task '{entry.task}' is not registered in the Celery "
                f"app {self._app_name!r}{hint}",
                "unregistered-task",
            )
        elif (signature := task_signature(task)) is not None:
            try:
                signature.bind(*entry.args, **entry.kwargs)
            except TypeError as exc:
                where, reason = _binding_failure(entry, signature, exc)
                yield Problem(
                    where,
                    f"schedule '{entry.name}': task '{entry.task}' takes {_shown(signature)}; "
                    f"{reason} (Celery would raise TypeError when it runs)",
                    "task-arguments",
                )
        queue = entry.options.get("queue")
        if self._queues is None or not isinstance(queue, str) or queue in self._queues:
            return
        if "${" in queue:
            return  # from the environment: unknown until plan time, and never to be shown
        close = difflib.get_close_matches(queue, sorted(self._queues), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        yield Problem(
            _at(entry, "options.queue", "options"),
            f"schedule '{entry.name}': queue '{queue}' is not one of the app's task_queues; "
            f"{hint}(declared: {', '.join(sorted(self._queues))})",
            "unknown-queue",
        )


def declared_queues(app: Celery) -> frozenset[str] | None:
    """The queue names of ``task_queues``, or None when the app declares none."""
    queues = app.conf.task_queues
    if not queues:
        return None
    if isinstance(queues, Mapping):
        return frozenset(str(name) for name in queues)
    return frozenset(str(getattr(queue, "name", queue)) for queue in queues)


def task_signature(task: Any) -> inspect.Signature | None:
    """The parameters a call of the task binds to: its ``run`` method, without ``self`` of a
    ``bind=True`` task (run is then a method of the task) or of a Task subclass."""
    try:
        return inspect.signature(task.run)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check against
        return None


def _binding_failure(
    entry: DesiredEntry, signature: inspect.Signature, error: TypeError
) -> tuple[SourceLocation, str]:
    """The value that makes the call fail, and why, in Python's words: an extra argument, a
    keyword the task does not take (often a typo, so before a 'missing' one), a repeated
    argument; else (a required argument is missing) the kwargs, args or task written."""
    parameters = signature.parameters
    kinds = {parameter.kind for parameter in parameters.values()}
    positional = [
        name
        for name, parameter in parameters.items()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if inspect.Parameter.VAR_POSITIONAL not in kinds and len(entry.args) > len(positional):
        return _at(entry, f"args[{len(positional)}]", "args"), "too many positional arguments"
    any_keyword = inspect.Parameter.VAR_KEYWORD in kinds
    keywords = [
        name
        for name, parameter in parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
    for key in entry.kwargs:
        where = _at(entry, f"kwargs.{key}", "kwargs")
        parameter = parameters.get(key)
        if key in positional[: len(entry.args)] and key in keywords:
            return where, f"multiple values for argument '{key}'"
        if any_keyword:
            continue
        if parameter is None:
            close = difflib.get_close_matches(key, keywords, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return where, f"got an unexpected keyword argument '{key}'{hint}"
        if parameter.kind is parameter.POSITIONAL_ONLY:
            return where, f"'{key}' parameter is positional only, but was passed as a keyword"
    return _at(entry, "kwargs", "args", "task"), str(error)


def _shown(signature: inspect.Signature) -> str:
    # Without annotations: under 'from __future__ import annotations' they are strings,
    # which read badly in a one-line message.
    bare = [
        parameter.replace(annotation=parameter.empty) for parameter in signature.parameters.values()
    ]
    return str(signature.replace(parameters=bare, return_annotation=signature.empty))


def _at(entry: DesiredEntry, *fields: str) -> SourceLocation:
    """Where the first of ``fields`` that was written is, else the entry's name."""
    for name in fields:
        found = entry.field_sources.get(name)
        if found is not None:
            return found
    return entry.source or SourceLocation("<unknown>")
