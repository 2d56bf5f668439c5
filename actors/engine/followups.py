"""Follow-ups: work a thread's agent (or its owner, through the API) schedules on the
thread itself. When one is due, a run starts on the thread with its note as input (a
message from the system's side, not the user's).

`when` says when, as a string that arrives as sent:
- an instant with its offset, ISO 8601: `2026-12-01T09:00:00+01:00`, `...Z`;
- a delay, an ISO 8601 duration: `PT10M`, `P1DT2H`, `P2W`;
- a recurring interval: `every PT1H` (at least a minute);
- a cron expression of five fields, in UTC: `cron 0 9 * * 1-5`.

Plain Python: the thread service keeps them on the thread's record and asks its runtime
for one durable reminder per follow-up (a Dapr actor reminder on the actor host).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from actors.engine.messages import ToolCall, ToolResult
from actors.engine.provider import ToolSpec

SCHEDULE, LIST, CANCEL = "schedule_followup", "list_followups", "cancel_followup"
FOLLOWUP_TOOLS = (SCHEDULE, LIST, CANCEL)
# How far ahead a follow-up may be, and how often a recurring one may come.
HORIZON = timedelta(days=400)
SHORTEST_INTERVAL = timedelta(minutes=1)
# A one-time follow-up that cannot start its run when due is put off a minute this many
# times at most (an hour); a recurring one waits for its next time.
MAX_DEFERRALS = 60
MAX_NOTE_CHARS = 4_000
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
# A number of more digits is past the horizon in any unit (and Python refuses to read an
# int of over 4,300 digits).
_MAX_DIGITS = 9
# How many of a cron schedule's next times are checked against the shortest interval.
CRON_TIMES_CHECKED = 8


class FollowupError(ValueError):
    """A follow-up that cannot be scheduled: the message says why."""


class Followup(BaseModel):
    followup_id: str
    note: str
    # As it was given, and what it means.
    when: str
    kind: Literal["once", "every", "cron"]
    due_at: datetime
    every_seconds: int | None = None
    cron: str | None = None
    created_by: Literal["agent", "api"]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # How many times it came due so far.
    fired: int = 0
    # How many times a one-time follow-up that came due was put off a minute (its owner
    # had no run slot free, or the thread a follow-up's run waiting already).
    deferred: int = 0

    def put_off(self, now: datetime) -> Followup | None:
        """The follow-up when it came due and could not start its run: a one-time one a
        minute later (MAX_DEFERRALS times at most), a recurring one at its next time."""
        if self.kind != "once":
            return self.after_firing(now)
        if self.deferred >= MAX_DEFERRALS:
            return None
        return self.model_copy(
            update={"due_at": now + SHORTEST_INTERVAL, "deferred": self.deferred + 1}
        )

    def after_firing(self, now: datetime) -> Followup | None:
        """The follow-up once it has come due: its next time, or None if it was once."""
        if self.kind == "once":
            return None
        due = _next_time(self, max(now, self.due_at))
        return self.model_copy(update={"due_at": due, "fired": self.fired + 1})


def duration(text: str) -> timedelta | None:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds; None if not one."""
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    if any(g and len(g.lstrip("0")) > _MAX_DIGITS for g in match.groups()):
        raise FollowupError(f"when: at most {HORIZON.days} days ahead")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (OverflowError, ValueError):
        raise FollowupError(f"when: at most {HORIZON.days} days ahead") from None


def new_followup(
    when: str, note: str, created_by: Literal["agent", "api"], now: datetime
) -> Followup:
    """A follow-up from what was asked (raises FollowupError, saying what is wrong)."""
    if not note.strip():
        raise FollowupError("note: give the follow-up a note (what to do then)")
    if len(note) > MAX_NOTE_CHARS:
        raise FollowupError(f"note: at most {MAX_NOTE_CHARS} characters")
    fields: dict = {
        "followup_id": f"fu_{uuid.uuid4().hex[:16]}",
        "note": note,
        "when": when,
        "created_by": created_by,
        "created_at": now,
    }
    text = when.strip()
    if text.startswith("every "):
        interval = duration(text.removeprefix("every ").strip())
        if interval is None or interval < SHORTEST_INTERVAL:
            raise FollowupError(
                "when: 'every' takes an ISO 8601 duration of at least a "
                "minute, such as 'every PT1H' or 'every P1D'"
            )
        fields.update(
            kind="every", every_seconds=int(interval.total_seconds()), due_at=now + interval
        )
    elif text.startswith("cron "):
        expression = " ".join(text.removeprefix("cron ").split())
        fields.update(kind="cron", cron=expression, due_at=_checked_cron(expression, now))
    elif (delay := duration(text)) is not None:
        if delay < timedelta(seconds=1):
            raise FollowupError("when: a delay of at least a second")
        fields.update(kind="once", due_at=now + delay)
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise FollowupError(
                "when: an instant with its offset (2026-12-01T09:00:00+01:00), a delay "
                "(PT10M), 'every <duration>' or 'cron <five fields>'"
            ) from None
        if at.tzinfo is None:
            raise FollowupError("when: give the instant's offset, such as Z or +01:00")
        if at <= now:
            raise FollowupError("when: that instant has passed")
        fields.update(kind="once", due_at=at.astimezone(UTC))
    followup = Followup(**fields)
    if followup.due_at - now > HORIZON:
        raise FollowupError(f"when: at most {HORIZON.days} days ahead")
    return followup


def _checked_cron(expression: str, now: datetime) -> datetime:
    """The schedule's first time, once it is known to be five fields whose times come
    at least SHORTEST_INTERVAL apart."""
    if len(expression.split()) != 5:
        raise FollowupError(
            "when: a cron expression has exactly five fields (minute hour "
            "day-of-month month day-of-week), such as 'cron 0 9 * * 1-5'"
        )
    times = [_cron_after(expression, now)]
    for _ in range(CRON_TIMES_CHECKED - 1):
        times.append(_cron_after(expression, times[-1]))
    if any(b - a < SHORTEST_INTERVAL for a, b in zip(times, times[1:], strict=False)):
        raise FollowupError("when: a cron schedule may come at most once a minute")
    return times[0]


def _cron_after(expression: str, after: datetime) -> datetime:
    from cronsim import CronSim, CronSimError

    try:
        return next(CronSim(expression, after.astimezone(UTC).replace(tzinfo=None))).replace(
            tzinfo=UTC
        )
    except (CronSimError, StopIteration, ValueError, OverflowError) as exc:
        raise FollowupError(f"when: not a cron expression of five fields: {exc}") from None


def _next_time(followup: Followup, after: datetime) -> datetime:
    if followup.kind == "cron" and followup.cron is not None:
        return _cron_after(followup.cron, after)
    every = timedelta(seconds=followup.every_seconds or 60)
    due = followup.due_at + every
    if due <= after:  # came due late (a host was down): the next time from now
        due = after + every
    return due


TOOL_SPECS = {
    SCHEDULE: ToolSpec(
        name=SCHEDULE,
        description="Schedules a follow-up on this conversation: at that time you get the "
        "note back as a message and can act on it (the user need not be here). "
        "`when`: an instant with its offset (2026-12-01T09:00:00+01:00), a "
        "delay as an ISO 8601 duration (PT2H, P1D), 'every <duration>' "
        "(every P1D) or 'cron <five fields, UTC>' (cron 0 9 * * 1-5).",
        parameters={
            "type": "object",
            "required": ["when", "note"],
            "properties": {
                "when": {"type": "string"},
                "note": {"type": "string", "description": "What to do then, for yourself."},
            },
        },
    ),
    LIST: ToolSpec(name=LIST, description="Lists this conversation's scheduled follow-ups."),
    CANCEL: ToolSpec(
        name=CANCEL,
        description="Cancels a scheduled follow-up by its id.",
        parameters={
            "type": "object",
            "required": ["followup_id"],
            "properties": {"followup_id": {"type": "string"}},
        },
    ),
}


def view(followup: Followup) -> dict:
    return followup.model_dump(
        mode="json", include={"followup_id", "note", "when", "kind", "due_at", "created_by"}
    )


def answer_call(
    call: ToolCall, followups: list[Followup], limit: int, now: datetime, full: str | None = None
) -> tuple[list[Followup], ToolResult]:
    """Carries out a call of a follow-up tool on the thread's follow-ups; returns them as
    they are after it, and the call's result (`full`: why a schedule past `limit` is
    refused, when not the thread's own bound)."""

    def result(content: object, error: bool = False) -> ToolResult:
        text = content if isinstance(content, str) else json.dumps(content)
        return ToolResult(call_id=call.call_id, name=call.name, content=text, is_error=error)

    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return followups, result("the arguments must be a JSON object", True)
    if call.name == LIST:
        return followups, result([view(f) for f in followups])
    if call.name == CANCEL:
        wanted = arguments.get("followup_id")
        kept = [f for f in followups if f.followup_id != wanted]
        if len(kept) == len(followups):
            return followups, result(f"no follow-up {wanted!r} is scheduled", True)
        return kept, result({"cancelled": wanted})
    when, note = arguments.get("when"), arguments.get("note")
    if not isinstance(when, str) or not isinstance(note, str):
        return followups, result("give `when` and `note`, both strings", True)
    if len(followups) >= limit:
        return followups, result(
            full
            or f"this conversation has {limit} follow-ups "
            f"scheduled, the most it may have: cancel one first",
            True,
        )
    try:
        followup = new_followup(when, note, "agent", now)
    except FollowupError as exc:
        return followups, result(str(exc), True)
    return [*followups, followup], result(view(followup))
