"""A thread's durable reminders, by kind: what each is for, its name and what it carries.

    kind       name                 data      while
    deadline   deadline             run id    a waiting run's approvals may run out
    children   children             run id    a waiting run waits for child runs (repeats)
    followup   followup.<id>        -         a follow-up is scheduled
    erase      erase                owner     the thread's keys have a retention

Some are registered or dropped off the turn's critical path, where one lost costs
nothing: an erase reminder (the next commit that renews the thread registers it again;
one left behind finds the thread there and does nothing), and a follow-up's once it is
dropped (left behind, it finds no follow-up). A follow-up's reminder is registered before
the record that lists it is committed, and a run's deadline and children reminders
before the pause that needs them: those wait for the sidecar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Kind = Literal["deadline", "children", "followup", "erase"]
FOLLOWUP_PREFIX = "followup."


@dataclass(frozen=True)
class Reminder:
    kind: Kind
    name: str
    data: str = ""
    # Fires again after each period (None: once).
    every: timedelta | None = None

    @property
    def registered_off_path(self) -> bool:
        return self.kind == "erase"

    @property
    def dropped_off_path(self) -> bool:
        return self.kind in ("followup", "erase")

    @classmethod
    def deadline(cls, run_id: str) -> Reminder:
        return cls("deadline", "deadline", run_id)

    @classmethod
    def children(cls, run_id: str = "", every: timedelta | None = None) -> Reminder:
        return cls("children", "children", run_id, every)

    @classmethod
    def followup(cls, followup_id: str) -> Reminder:
        return cls("followup", FOLLOWUP_PREFIX + followup_id)

    @classmethod
    def erase(cls, owner: str = "") -> Reminder:
        return cls("erase", "erase", owner)

    @classmethod
    def fired(cls, name: str, data: str) -> Reminder | None:
        """The reminder a firing names; None for a name no kind has (one of an older
        version)."""
        if name.startswith(FOLLOWUP_PREFIX):
            return cls.followup(name.removeprefix(FOLLOWUP_PREFIX))
        if name in ("deadline", "children", "erase"):
            return cls(name, name, data)  # type: ignore[arg-type]
        return None
