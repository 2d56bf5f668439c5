"""Whether the active run needs the durable watchdog yet, and whether anyone can see it.

A run started (or resumed) inside a caller's call has no watchdog until a commit leaves
it running in the store: one that stops within the call never needs one. If it also
started in the call, nobody can have seen it (it is not in the store), so nobody listens
for its events: they stay in its log, unpublished."""

from __future__ import annotations

from datetime import timedelta

from actors.engine.run import RunRecord
from actors.threads.effects import Effects
from actors.threads.run_events import RunMessage


class WatchdogDuty:
    def __init__(self, effects: Effects) -> None:
        self._effects = effects
        self._unwatched: str | None = None
        self._running = False
        self._unseen = False
        self._slowed = False

    def waiting_for_slot(self, every: timedelta) -> None:
        """The run waits for a model slot (it is woken when it comes): watched now and
        then only, so a herd of waiting runs does not keep every host busy answering its
        watchdogs."""
        self._slowed = True
        self._effects.watch(every)

    def start(self, run_id: str, now: bool, unseen: bool) -> None:
        """The watchdog for a running run: now, or once a commit leaves it running.
        `unseen`: the run started in this call, so it is not in the store yet."""
        if now:
            self._effects.watch()
        else:
            self._unwatched, self._running, self._unseen = run_id, True, unseen

    def stepped(self, run: RunRecord) -> None:
        if run.run_id == self._unwatched:
            self._running = run.status == "running"
        elif self._slowed and run.status == "running":
            self._effects.watch()  # its steps go on: watched closely again
        self._slowed = False

    async def committed(self) -> None:
        """After a commit: a run it left running may outlive this host, so its watchdog
        is registered before anyone is told (a host whose sidecar is going fails the
        call, which its caller tries again elsewhere, rather than leave a run nothing
        wakes)."""
        if self._unwatched is not None and self._running:
            self._unwatched = None
            await self._effects.watched()

    def stop(self, run_id: str) -> None:
        """The run stopped: its watchdog goes, if it ever had one."""
        if self._unwatched == run_id:
            self._unwatched = None
        else:
            self._effects.unwatch()

    def dropped(self) -> None:
        """The turn's writes were thrown away: the run needs no watchdog of this turn's."""
        self._unwatched = None

    def unseen(self, message: RunMessage) -> bool:
        """Whether the message is of a run nobody can follow (started and stopped inside
        its caller's call, committed whole)."""
        return self._unseen and message.run_id == self._unwatched
