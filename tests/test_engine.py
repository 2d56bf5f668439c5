"""The engine's turn with the scripted provider, without Dapr."""

import asyncio

from actors.engine.messages import AssistantText, UserText
from actors.engine.scripted import ScriptedProvider
from actors.engine.turn import take_turn


def test_a_turn_adds_the_user_message_and_the_reply() -> None:
    provider = ScriptedProvider(["Hello! How can I help?"])
    added = asyncio.run(take_turn([], "hi", provider))
    assert [type(m) for m in added] == [UserText, AssistantText]
    assert added[0].text == "hi"
    assert added[1].text == "Hello! How can I help?"
    assert added[1].model == "scripted"


def test_past_its_script_the_provider_echoes_the_latest_user_message() -> None:
    provider = ScriptedProvider(["first"])
    first = asyncio.run(take_turn([], "one", provider))
    second = asyncio.run(take_turn(first, "two", provider))
    assert second[1].text == "You said: two"
