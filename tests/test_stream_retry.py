"""A model call that streamed some text and is then retried starts its text over: the
deltas of the attempt that was thrown away are withdrawn, so a stream never shows the
text twice (engine → actor's delta batcher → gateway's SSE, in-process)."""

import asyncio
from collections.abc import AsyncIterator

from actors.engine.agents import AgentDefinition
from actors.engine.errors import ProviderUnavailable
from actors.engine.messages import AssistantText, UserText
from actors.engine.provider import ModelRequest, ModelResponse, Provider, StreamEvent, TextDelta
from actors.engine.retry import RetryPolicy
from actors.engine.run import RunRecord
from actors.engine.step import call_model
from actors.engine.tools import ToolRegistry
from actors.threads.run_events import DELTA_WINDOW, DeltaBatcher, DeltaMessage, PublishedRunMessage
from gateway.run_stream import DeltaStream
from threadhost.client import EventStreamParser


class CutOnce(Provider):
    """Streams the start of a first answer, then fails as a cut stream would; the
    retry streams the whole second answer."""

    vendor = "cut-once"

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        words = (
            ["A first ", "answer ", "that breaks"] if self.calls == 1 else ["The real ", "answer."]
        )
        for word in words:
            yield TextDelta(text=word)
            await asyncio.sleep(DELTA_WINDOW)  # each word leaves in a batch of its own
        if self.calls == 1:
            raise ProviderUnavailable("the stream was cut")
        yield ModelResponse(parts=[AssistantText(text="The real answer.")], model="m")


def shown_text(sse: str) -> str:
    """What a client that follows token.discard shows of the step's streamed text."""
    parser, text = EventStreamParser(), ""
    for line in sse.splitlines():
        event = parser.feed(line)
        if event is None:
            continue
        if event.event == "token.discard":
            text = ""
        elif event.event == "token.delta":
            text += event.data["text"]
    return text


def test_a_retried_model_call_withdraws_the_text_it_streamed_first() -> None:
    published: list[DeltaMessage] = []
    batcher = DeltaBatcher("th_1", "run_1", 1, published.append)
    run = RunRecord(
        run_id="run_1",
        thread_id="th_1",
        agent=AgentDefinition(name="a"),
        first_message=0,
        status="running",
    )
    provider = CutOnce()

    async def step() -> None:
        outcome = await call_model(
            run,
            [UserText(text="hi")],
            provider,
            ToolRegistry(),
            {},
            RetryPolicy(attempts=2, base_delay=0, max_delay=0),
            batcher,
        )
        batcher.flush()
        assert outcome.error is None and provider.calls == 2

    asyncio.run(step())
    stream = DeltaStream()
    sse = ""
    for raw in published:  # as daprd delivers them to a gateway replica
        message = PublishedRunMessage.model_validate({"data": raw.model_dump(mode="json")})
        sse += "".join(stream.take(message.data.model_dump(mode="json"), steps_done=0))
    assert "A first" in sse, "the first attempt's text was streamed before the cut"
    assert "event: token.discard" in sse
    assert shown_text(sse) == "The real answer."
