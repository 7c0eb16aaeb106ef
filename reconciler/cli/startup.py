"""Start-up: a command's modules kept out of the cyclic collector's way, and RedBeat's
encoder and rrule without RedBeat's scheduler.

``import redbeat.decoder`` first runs ``redbeat/__init__.py``, which imports the scheduler
and with it redis-py, celery.beat and tenacity: about a quarter of validate's start-up,
though what the reconciler uses (the JSON encoder and decoder, ``rrule``: RedBeat's own code,
so that the checks and the stored bytes agree with beat's) needs none of them. Registering
the package without running its ``__init__`` lets those modules load alone; the first use
of any other name of the package (``redbeat.RedBeatScheduler``, ``from redbeat import
RedBeatSchedulerEntry``) runs the ``__init__`` then, as a plain import would have.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

_INIT_LOCK = threading.Lock()


@contextmanager
def long_lived_imports() -> Iterator[None]:
    """For importing a command's modules, which create long-lived objects only (modules,
    classes, functions): the cyclic collector would scan them again and again for nothing,
    about a sixth of validate's start-up. It is paused meanwhile, and what the imports
    created is then frozen (``gc.freeze``: never scanned, still freed by reference counting).
    Only when the imports loaded something: an in-process caller running many commands
    does not freeze its own objects each time."""
    modules = len(sys.modules)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules:
            gc.freeze()
        if collecting:
            gc.enable()


def defer_redbeat_init() -> None:
    """Register the ``redbeat`` package with its ``__init__`` deferred (see above); nothing
    changes when it is already imported or cannot be found."""
    if "redbeat" in sys.modules:
        return
    spec = importlib.util.find_spec("redbeat")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # a later import fails as it would have
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def run_init(name: str) -> object:
        # A module's __getattr__ is asked only for names it does not hold yet (PEP 562).
        with _INIT_LOCK:
            if package.__dict__.pop("__getattr__", None) is not None:
                try:
                    loader.exec_module(package)
                except BaseException:
                    sys.modules.pop("redbeat", None)  # as a failed import leaves it
                    raise
        return getattr(package, name)

    setattr(package, "__getattr__", run_init)  # noqa: B010  # a module attribute, by name
    sys.modules["redbeat"] = package
