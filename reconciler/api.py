"""The Python API: load schedule files, compute a plan, apply it. The CLI is built on it.

from reconciler.api import StoreSettings, load_schedules, make_plan, apply_plan, open_store

loaded = load_schedules(["schedules"])
with open_store(StoreSettings(redis_url="redis://localhost:6379/0")) as store:
    plan = make_plan(store, loaded, prune=True)
    print(plan.summary())
    result = apply_plan(store, plan)
"""

from reconciler.core.plan import Plan
from reconciler.load.desired_state import LoadResult
from reconciler.services.apply import ApplyResult, apply_plan, check_deletions, holding_apply_lock
from reconciler.services.planning import check_saved_plan, load_schedules, make_plan, open_store
from reconciler.store.session import Store, StoreSettings

__all__ = [
    "ApplyResult",
    "LoadResult",
    "Plan",
    "Store",
    "StoreSettings",
    "apply_plan",
    "check_deletions",
    "check_saved_plan",
    "holding_apply_lock",
    "load_schedules",
    "make_plan",
    "open_store",
]
