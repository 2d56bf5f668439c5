"""The Owner actor: one per caller (person or service), for what spans their threads.

It keeps the caller's thread list (so listing touches no thread actor) and their rate
limits, which hold across gateway replicas because the actor is one, wherever it lives.
What it keeps and decides is actors/threads/owner_book.py; its requests and answers are
actors/threads/owner_contract.py. Each method here reads one, hands it over, answers.
"""

from __future__ import annotations

from typing import Any

from dapr.actor import Actor, ActorInterface, actormethod

from actors.threads.owner_book import OwnerBook
from actors.threads.owner_contract import (
    AddEndUser,
    AddThread,
    Admit,
    ListEndUsers,
    ListThreads,
    RemoveThread,
    RunEnded,
    SetFollowups,
    SetStatus,
)

Payload = dict[str, Any]


class OwnerInterface(ActorInterface):
    @actormethod(name="AddThread")
    async def add_thread(self, request: Payload) -> Payload: ...

    @actormethod(name="RemoveThread")
    async def remove_thread(self, request: Payload) -> Payload: ...

    @actormethod(name="ListThreads")
    async def list_threads(self, request: Payload) -> Payload: ...

    @actormethod(name="Admit")
    async def admit(self, request: Payload) -> Payload: ...

    @actormethod(name="RunEnded")
    async def run_ended(self, request: Payload) -> Payload: ...

    @actormethod(name="SetFollowups")
    async def set_followups(self, request: Payload) -> Payload: ...

    @actormethod(name="SetStatus")
    async def set_status(self, request: Payload) -> Payload: ...

    @actormethod(name="AddEndUser")
    async def add_end_user(self, request: Payload) -> Payload: ...

    @actormethod(name="ListEndUsers")
    async def list_end_users(self, request: Payload) -> Payload: ...


class _ActorState:
    """The book's store: the actor's state manager."""

    def __init__(self, state_manager: Any) -> None:
        self._state = state_manager

    async def get(self, key: str) -> Any | None:
        found, value = await self._state.try_get_state(key)
        return value if found else None

    async def set(self, key: str, value: Any) -> None:
        await self._state.set_state(key, value)

    async def remove(self, key: str) -> None:
        await self._state.try_remove_state(key)


class Owner(Actor, OwnerInterface):
    """Registered as actor type `Owner`."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._book = OwnerBook(_ActorState(self._state_manager))

    async def add_thread(self, request: Payload) -> Payload:
        answer = await self._book.add_thread(AddThread.model_validate(request))
        return answer.model_dump(mode="json")

    async def remove_thread(self, request: Payload) -> Payload:
        answer = await self._book.remove_thread(RemoveThread.model_validate(request))
        return answer.model_dump(mode="json")

    async def list_threads(self, request: Payload) -> Payload:
        answer = await self._book.list_threads(ListThreads.model_validate(request))
        return answer.model_dump(mode="json")

    async def admit(self, request: Payload) -> Payload:
        return self._book.admit(Admit.model_validate(request)).model_dump(mode="json")

    async def run_ended(self, request: Payload) -> Payload:
        answer = await self._book.run_ended(RunEnded.model_validate(request))
        return answer.model_dump(mode="json")

    async def set_followups(self, request: Payload) -> Payload:
        answer = await self._book.set_followups(SetFollowups.model_validate(request))
        return answer.model_dump(mode="json")

    async def set_status(self, request: Payload) -> Payload:
        answer = await self._book.set_status(SetStatus.model_validate(request))
        return answer.model_dump(mode="json")

    async def add_end_user(self, request: Payload) -> Payload:
        answer = await self._book.add_end_user(AddEndUser.model_validate(request))
        return answer.model_dump(mode="json")

    async def list_end_users(self, request: Payload) -> Payload:
        answer = await self._book.list_end_users(ListEndUsers.model_validate(request))
        return answer.model_dump(mode="json")
