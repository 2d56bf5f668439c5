"""A run's A2A push notification targets: set and removed by its task's client, each a
URL its agent's webhook allows (the same bound as a thread's webhook_url). A target set
on a run that has already stopped (it waits for input, or ended) hears of that state at
once, so a client that asks late misses nothing. Plain Python, a collaborator of the
thread service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from actors.engine.events import run_announcements
from actors.engine.run import TERMINAL, PushTarget, StatusChanged
from actors.threads.announcements import Announcement, Announcements
from actors.threads.contract import (
    ConfigurePush,
    Invalid,
    NotFound,
    RunAnswer,
    RunNotFound,
    RunView,
)
from actors.threads.deliveries import deliveries
from actors.threads.reads import ThreadReads
from actors.threads.store import ThreadStore

# Targets one run may have at once.
MAX_TARGETS = 8


class ThreadPush:
    def __init__(
        self,
        store: ThreadStore,
        reads: ThreadReads,
        announcements: Announcements,
        commit: Callable[[], Awaitable[None]],
    ) -> None:
        self._store, self._reads, self._announcements = store, reads, announcements
        self._commit = commit

    async def configure(
        self, request: ConfigurePush
    ) -> RunAnswer | NotFound | RunNotFound | Invalid:
        found = await self._reads.owned_run(request, request.run_id)
        if isinstance(found, NotFound | RunNotFound):
            return found
        record, run = found
        others = [t for t in run.push if t.id != request.config_id]
        if request.remove:
            run.push = others
        else:
            webhook = run.agent.webhook
            if webhook is None:
                return Invalid(
                    detail=f"the agent {run.agent.name!r} sends no push notifications "
                    "(its file has no webhook)"
                )
            if request.url is None or not webhook.allows(request.url):
                return Invalid(
                    detail=f"url: the agent {run.agent.name!r} sends no push notifications "
                    "there (its webhook.allowed_urls)"
                )
            if len(others) >= MAX_TARGETS:
                return Invalid(detail=f"a task has at most {MAX_TARGETS} push targets")
            target = PushTarget(id=request.config_id, url=request.url, token=request.token)
            run.push = [*others, target]
            if run.status == "requires_action" or run.status in TERMINAL:
                now = StatusChanged(
                    seq=run.next_seq - 1,
                    data={"status": run.status, **({"reason": run.reason} if run.reason else {})},
                )
                for event in run_announcements(record.owner, run, [now]):
                    event = event.model_copy(update={"id": f"{event.id}.now.{target.id}"})
                    sent = deliveries(record, run.agent, event, [target])
                    pushed = [d for d in sent if d.a2a is not None]
                    self._announcements.add(Announcement(event=event, deliveries=pushed))
        await self._store.save_run(run, [])
        await self._commit()
        return RunAnswer(run=RunView.of(run))
