"""One turn: a user message in, the assistant's reply out."""

from __future__ import annotations

from collections.abc import Sequence

from actors.engine.messages import AssistantText, Message, UserText
from actors.engine.provider import Provider


async def take_turn(context: Sequence[Message], text: str, provider: Provider) -> list[Message]:
    """Returns the messages the turn adds to the thread: the user's and the reply.

    `context` is the recent history the model sees; the caller decides how much.
    """
    user = UserText(text=text)
    response = await provider.complete([*context, user])
    return [user, AssistantText(text=response.text, model=response.model)]
