"""The Thread actor: loads a thread's state, lets the engine take the turn, saves the result."""

from __future__ import annotations

from typing import Any

from dapr.actor import Actor

from actors.engine.messages import messages_adapter
from actors.engine.scripted import ScriptedProvider
from actors.engine.turn import take_turn
from actors.interface import Payload, ThreadActorInterface
from actors.lifecycle import lifecycle
from actors.state import (
    RECORD_KEY,
    HistoryPage,
    ThreadRecord,
    append_messages,
    page_key,
    page_range,
    read_page,
    read_record,
)
from threadhost.settings import get_settings

NOT_FOUND: Payload = {"status": "not_found"}


PUBLIC_FIELDS = {"thread_id", "created_at", "updated_at", "message_count", "metadata"}


def describe(record: ThreadRecord) -> Payload:
    return record.model_dump(mode="json", include=PUBLIC_FIELDS)


class Thread(Actor, ThreadActorInterface):
    """Registered as actor type `Thread` (the SDK names a type after its class)."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._settings = get_settings()
        self._provider = ScriptedProvider()

    async def _on_activate(self) -> None:
        lifecycle.activated(self.id.id)

    async def _on_deactivate(self) -> None:
        lifecycle.deactivated(self.id.id)

    async def create(self, request: Payload) -> Payload:
        record = await self._load_record()
        if record is None:
            record = ThreadRecord(
                thread_id=self.id.id,
                page_size=self._settings.history_page_size,
                metadata=request.get("metadata") or {},
            )
            await self._state_manager.set_state(RECORD_KEY, record.model_dump(mode="json"))
        return {"status": "ok", "thread": describe(record)}

    async def describe(self) -> Payload:
        record = await self._load_record()
        return NOT_FOUND if record is None else {"status": "ok", "thread": describe(record)}

    async def post_message(self, request: Payload) -> Payload:
        text = request.get("text")
        if not isinstance(text, str) or not text.strip():
            # Callers other than the gateway reach this method too.
            return {"status": "invalid", "detail": "text must be a non-blank string"}
        record = await self._load_record()
        if record is None:
            return NOT_FOUND
        tail = await self._load_page(record.tail_page_index())
        new = await take_turn(tail.messages, text, self._provider)
        record, pages = append_messages(record, tail, new)
        for page in pages:
            await self._state_manager.set_state(page_key(page.index), page.model_dump(mode="json"))
        await self._state_manager.set_state(RECORD_KEY, record.model_dump(mode="json"))
        first = record.message_count - len(new)
        return {"status": "ok", "thread": describe(record), "first_index": first,
                "messages": messages_adapter.dump_python(new, mode="json")}

    async def read_history(self, request: Payload) -> Payload:
        record = await self._load_record()
        if record is None:
            return NOT_FOUND
        offset, limit = int(request.get("offset", 0)), int(request.get("limit", 100))
        messages = []
        for index in page_range(record, offset, limit):
            page = await self._load_page(index)
            messages.extend(page.messages)
        start = offset % record.page_size
        window = messages[start : start + limit]
        return {"status": "ok", "thread": describe(record), "offset": offset,
                "messages": messages_adapter.dump_python(window, mode="json")}

    async def _load_record(self) -> ThreadRecord | None:
        found, data = await self._state_manager.try_get_state(RECORD_KEY)
        return read_record(data) if found else None

    async def _load_page(self, index: int) -> HistoryPage:
        found, data = await self._state_manager.try_get_state(page_key(index))
        return read_page(data) if found else HistoryPage(index=index)
