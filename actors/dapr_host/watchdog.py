"""The run watchdog: a Dapr job per thread with a running run, which wakes the thread's
actor wherever placement puts it, so a run whose host died goes on without a caller.

Why a job of this app, not a reminder of the Thread actor: a reminder is delivered to
some daprd, which forwards it to the daprd that placement says holds the actor. If that
host is frozen (not dead: its port still accepts connections), the forward waits for
gRPC's 20 s connect timeout, and the scheduler sends the reminder nothing more until it
returns: a frozen host held its runs for 20 s. A job is delivered to an app beside a
live daprd (one whose app fails its health checks gets none), and the app calls the
actor with a time limit of its own: a call that reaches the frozen host gives up in
seconds, and the job's next firing, once placement has dropped that host, reaches the
new owner.

The job fires every `run_watchdog_seconds`, first one period after the run starts (a run
that ends sooner never sees it); it is removed when the run stops, or by the first firing
that finds no running run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request

from actors.threads.contract import THREAD_ACTOR, WatchdogFired
from threadhost.common.sidecar import PooledActorClient, shared_actor_client

log = logging.getLogger(__name__)

JOB_PREFIX = "run-watchdog-"
# The longest a firing waits for the thread's actor: a step that holds the actor's lock
# is a live host at work, and the next firing comes one period later anyway.
CALL_LIMIT_SECONDS = 2.0


def job_name(thread_id: str) -> str:
    return JOB_PREFIX + thread_id


async def set_watchdog(client: PooledActorClient, thread_id: str, period_seconds: float) -> None:
    period = f"{period_seconds:g}s"
    await client.schedule_job(
        job_name(thread_id),
        {
            "schedule": f"@every {period}",
            "dueTime": period,
            "overwrite": True,
            "data": {"thread_id": thread_id},  # daprd refuses to deliver a job without data
            # A firing that failed is not repeated: the next one comes a period later.
            "failure_policy": {"drop": {}},
        },
    )


async def clear_watchdog(client: PooledActorClient, thread_id: str) -> None:
    await client.delete_job(job_name(thread_id))


# Other jobs of this app, by the prefix of their names: what handles one that fired.
JobHandler = Callable[[Request], Awaitable[None]]


def watchdog_routes(
    period_seconds: float,
    others: dict[str, JobHandler] | None = None,
) -> APIRouter:
    """The route daprd calls when a job of this app fires (`/job/<name>`, daprd's own:
    threadhost/app.py lets only the app's daprd reach it): the watchdogs', and `others`
    (the webhook deliverer's later attempts)."""
    routes = APIRouter()
    limit = min(CALL_LIMIT_SECONDS, period_seconds)

    @routes.post("/job/{name}", include_in_schema=False)
    async def job_fired(name: str, request: Request) -> dict[str, str]:
        for prefix, handler in (others or {}).items():
            if name.startswith(prefix):
                await handler(request)
                return {}
        if not name.startswith(JOB_PREFIX):
            log.warning("job %r fired: not one of threadhost's", name)
            return {}
        thread_id = name.removeprefix(JOB_PREFIX)
        try:
            await shared_actor_client().invoke_method(
                THREAD_ACTOR,
                thread_id,
                WatchdogFired.method,
                WatchdogFired().model_dump_json().encode(),
                limit_seconds=limit,
            )
        except Exception as exc:  # noqa: BLE001 - the next firing tries again
            log.info(
                "thread %s: the watchdog's call did not answer within %.1f s (%s): "
                "its host is busy or gone",
                thread_id,
                limit,
                type(exc).__name__,
            )
        return {}

    return routes
