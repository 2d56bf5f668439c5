"""The bound on concurrent model calls per vendor or model, across every host.

One `ModelGate` actor per bound holds how many slots each process has, each process's
share expiring unless renewed (a process that dies frees its slots after LEASE_SECONDS;
none is ever handed out twice meanwhile). In each process, one `GateQueue` per bound
queues that process's steps in order and asks the gate for as many slots as it has
steps waiting, handing back what its calls gave back in the same request: the gate takes
a few requests per second from each process, however many runs are waiting.

The gate keeps its table in memory: if its own host goes, the next host starts from an
empty table, and slots handed out before may be handed out again until the calls that
hold them end (at most one model call each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dapr.actor import Actor, ActorInterface, actormethod
from pydantic import BaseModel

from threadhost.common.ids import encoded_actor_id
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)

GATE_ACTOR = "ModelGate"
# A process's slots are its own this long after its last request (it renews them while
# it holds any, every third of it).
LEASE_SECONDS = 60.0
# How soon a process asks again when its waiting steps got fewer slots than they want.
FIRST_PAUSE, LONGEST_PAUSE = 0.02, 0.5
# How long a slot is held for a step that was woken to take it.
HOLD_SECONDS = 10.0
# How long a process's last count of waiting steps counts in the others' shares.
WANTS_SECONDS = 2.0

Payload = dict[str, Any]
Invoke = Callable[[str, str, bytes], Awaitable[bytes]]


class Take(BaseModel):
    process: str
    # Slots the process wants now, and slots it gives back.
    want: int = 0
    give: int = 0
    limit: int


class Taken(BaseModel):
    granted: int


class ModelGateInterface(ActorInterface):
    @actormethod(name="Take")
    async def take(self, request: Payload) -> Payload: ...


class GateTable:
    """How many slots of one bound each process holds, and until when. While several
    processes have steps waiting, each gets at most its share of the bound, by how many
    it has waiting, so no process's steps wait for another's to drain."""

    def __init__(self) -> None:
        # process -> (slots held, when its hold expires)
        self._held: dict[str, tuple[int, float]] = {}
        # process -> (steps it had waiting at its last request, and when that was)
        self._wants: dict[str, tuple[int, float]] = {}

    def take(self, asked: Take, now: float) -> Taken:
        self._held = {p: held for p, held in self._held.items() if held[1] > now}
        self._wants = {p: w for p, w in self._wants.items() if now - w[1] < WANTS_SECONDS}
        self._wants[asked.process] = (asked.want, now)
        mine = max(self._held.get(asked.process, (0, 0.0))[0] - asked.give, 0)
        others = sum(n for p, (n, _) in self._held.items() if p != asked.process)
        wanting = sum(w + self._held.get(p, (0, 0.0))[0] for p, (w, _) in self._wants.items())
        share = math.ceil(asked.limit * (asked.want + mine) / wanting) if wanting else asked.limit
        granted = max(min(asked.want, asked.limit - others - mine, share - mine), 0)
        self._held[asked.process] = (mine + granted, now + LEASE_SECONDS)
        return Taken(granted=granted)


class ModelGate(Actor, ModelGateInterface):
    """Registered as actor type `ModelGate`: one per bound (its key, URL-safe base64)."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._table = GateTable()

    async def take(self, request: Payload) -> Payload:
        taken = self._table.take(Take.model_validate(request), time.monotonic())
        return taken.model_dump()


def gate_actor_id(bound: str) -> str:
    return encoded_actor_id(bound)


@dataclass
class Ticket:
    """A step's place in the queue: granted (its slot held for it) or not yet; who to
    wake when it is granted while the step is not waiting in its turn."""

    granted: asyncio.Future[bool]
    wake: Callable[[], Awaitable[None]] | None = None
    granted_at: float | None = None


class GateQueue:
    """This process's steps waiting under one bound, first come first served. A step
    that cannot wait in its turn keeps its ticket: when its slot comes, the slot is held
    for it for HOLD_SECONDS and its thread is woken to take it."""

    def __init__(self, bound: str, limit: int, invoke: Invoke, process: str) -> None:
        self.bound, self.limit, self._invoke, self._process = bound, limit, invoke, process
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._held = self._returned = 0
        self._wake = asyncio.Event()
        self._asking: asyncio.Task[None] | None = None

    @property
    def _wanting(self) -> int:
        return sum(1 for t in self._tickets.values() if not t.granted.done())

    async def take(
        self, ticket_id: str, wait: float, wake: Callable[[], Awaitable[None]] | None = None
    ) -> bool:
        """Whether the step's slot came within `wait` seconds (then held until `give`);
        if not, its ticket stays in the queue and `wake` is called when it comes."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            ticket = Ticket(asyncio.get_running_loop().create_future())
            self._tickets[ticket_id] = ticket
            self._ask()
        ticket.wake = None
        if not ticket.granted.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ticket.granted), wait)
        if ticket.granted.done():
            self._tickets.pop(ticket_id, None)  # the step holds the slot now
            return True
        ticket.wake = wake
        return False

    def give(self) -> None:
        self._held -= 1
        self._returned += 1
        self._ask()

    def _ask(self) -> None:
        self._wake.set()
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._keep_asking())

    async def _keep_asking(self) -> None:
        pause = FIRST_PAUSE
        while self._tickets or self._returned or self._held:
            self._wake.clear()
            self._drop_unclaimed()
            want, give = self._wanting, self._returned
            self._returned = 0
            try:
                answer = await self._invoke(
                    gate_actor_id(self.bound),
                    "Take",
                    Take(process=self._process, want=want, give=give, limit=self.limit)
                    .model_dump_json()
                    .encode(),
                )
                granted = Taken.model_validate_json(answer).granted
            except Exception as exc:  # noqa: BLE001 - asked again after a pause
                log.warning("model gate %s not reached (%s)", self.bound, type(exc).__name__)
                self._returned += give
                granted = 0
            self._hand_out(granted)
            if want and granted < want:
                # Again after a pause, or as soon as a call here gives a slot back.
                if not self._returned:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            pause = FIRST_PAUSE
            if (self._held or self._tickets) and not self._returned and not self._wanting:
                # Holding slots: renew them now and then, hand back those nobody came
                # for, or wake for a new step.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(LEASE_SECONDS / 3, HOLD_SECONDS))

    def _hand_out(self, granted: int) -> None:
        now = time.monotonic()
        for ticket in self._tickets.values():
            if not granted:
                break
            if ticket.granted.done():
                continue
            ticket.granted.set_result(True)
            ticket.granted_at = now
            self._held += 1
            granted -= 1
            if ticket.wake is not None:  # its step is not waiting in its turn: wake it
                asyncio.create_task(_woken(ticket.wake))
        self._returned += granted  # nobody waits for them any more

    def _drop_unclaimed(self) -> None:
        """Slots held for steps that did not come for them within HOLD_SECONDS go back."""
        now = time.monotonic()
        for ticket_id, ticket in list(self._tickets.items()):
            if ticket.granted_at is not None and now - ticket.granted_at > HOLD_SECONDS:
                del self._tickets[ticket_id]
                self._held -= 1
                self._returned += 1


async def _woken(wake: Callable[[], Awaitable[None]]) -> None:
    try:
        await wake()
    except Exception as exc:  # noqa: BLE001 - the step's fallback timer or watchdog comes
        log.warning("a step with a model slot waiting could not be woken (%s)", type(exc).__name__)


class ModelGates:
    """This process's queues, one per bound."""

    def __init__(self, settings: Settings, invoke: Invoke) -> None:
        self._settings, self._invoke = settings, invoke
        self._process = uuid.uuid4().hex
        self._queues: dict[str, GateQueue] = {}

    def _queue(self, bound: str) -> GateQueue:
        if bound not in self._queues:
            limit = self._settings.model_concurrency[bound]
            self._queues[bound] = GateQueue(bound, limit, self._invoke, self._process)
        return self._queues[bound]

    async def take(
        self, bounds: list[str], ticket: str, wake: Callable[[], Awaitable[None]]
    ) -> Callable[[], None] | None:
        """A slot under each bound, in order (vendor, then model), or None: the step is
        woken when they may have come."""
        taken: list[GateQueue] = []
        for bound in bounds:
            queue = self._queue(bound)
            if not await queue.take(ticket, self._settings.model_slot_wait_seconds, wake):
                for held in taken:
                    held.give()
                return None
            taken.append(queue)

        def give_back() -> None:
            for held in taken:
                held.give()

        return give_back


_gates: ModelGates | None = None


def process_gates(settings: Settings) -> ModelGates:
    global _gates
    if _gates is None:

        async def invoke(actor_id: str, method: str, body: bytes) -> bytes:
            return await shared_actor_client().invoke_method(GATE_ACTOR, actor_id, method, body)

        _gates = ModelGates(settings, invoke)
    return _gates
