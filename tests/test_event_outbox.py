"""A thread's run messages on their way to the topic (actors/threads/run_events.py EventOutbox),
in process: a quick run's checkpoints go out as one message, in order, and nothing waits
for a flush that never comes."""

import asyncio
from typing import Any

from actors.engine.run import StepCompleted
from actors.threads.run_events import DeltaMessage, EventOutbox, RunMessage, StepEventsMessage


def step(run_id: str, *seqs: int) -> StepEventsMessage:
    """Events with these sequence numbers, each completing the step of the same number."""
    return StepEventsMessage(
        thread_id="th_1",
        run_id=run_id,
        events=[StepCompleted(seq=seq, data={"step": seq}) for seq in seqs],
    )


def delta(text: str, attempt: int = 1) -> DeltaMessage:
    return DeltaMessage(thread_id="th_1", run_id="run_1", step=3, attempt=attempt, delta=text)


class Topic:
    """What was sent, and a way to wait for the nth message (in order, one at a time,
    as the actor's in-order background queue runs them)."""

    def __init__(self) -> None:
        self.sent: list[RunMessage] = []
        self._arrived = asyncio.Condition()
        self._last: asyncio.Task[Any] | None = None
        self.in_flight, self.answers = asyncio.Event(), asyncio.Event()
        self.answers.set()

    async def send(self, message: RunMessage) -> None:
        self.in_flight.set()
        await self.answers.wait()
        async with self._arrived:
            self.sent.append(message)
            self._arrived.notify_all()

    def schedule(self, work: Any) -> None:
        previous = self._last

        async def after() -> None:
            if previous is not None:
                await previous
            await work

        self._last = asyncio.get_running_loop().create_task(after())

    async def settled(self) -> None:
        """Everything scheduled so far has been sent."""
        if self._last is not None:
            await asyncio.wait_for(self._last, 5)

    async def until(self, count: int) -> list[RunMessage]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.sent) >= count), 5)
        return self.sent


def seqs(message: RunMessage) -> list[int]:
    assert isinstance(message, StepEventsMessage)
    return [event.seq for event in message.events]


def test_the_checkpoints_of_a_turn_go_out_as_one_message_when_flushed() -> None:
    async def turn() -> list[RunMessage]:
        topic = Topic()
        outbox = EventOutbox(topic.send, topic.schedule, linger=60)
        for n in (1, 2, 3):
            outbox.add(step("run_1", n * 2 - 1, n * 2))
            await asyncio.sleep(0)  # the commit of the next step
        outbox.flush()
        return await topic.until(1)

    [message] = asyncio.run(turn())
    assert seqs(message) == [1, 2, 3, 4, 5, 6]


def test_step_events_go_out_by_themselves_when_no_flush_comes() -> None:
    async def slow_step() -> list[RunMessage]:
        topic = Topic()
        outbox = EventOutbox(topic.send, topic.schedule, linger=0.01)
        outbox.add(step("run_1", 1))
        return await topic.until(1)  # while the next step still runs

    [message] = asyncio.run(slow_step())
    assert seqs(message) == [1]


def test_a_quick_steps_text_goes_only_to_those_who_stream_it() -> None:
    async def quick_step(streamed: bool) -> list[RunMessage]:
        topic = Topic()
        outbox = EventOutbox(topic.send, topic.schedule, linger=60)
        outbox.add(step("run_1", 1, 2))
        outbox.add(delta("Hel"))
        outbox.add(delta("lo"))
        outbox.add(step("run_1", 3))
        outbox.flush(text_of_ended_steps=streamed)
        await topic.settled()
        return topic.sent

    # The caller waits for the answer, which carries the messages: the step has the text.
    [message] = asyncio.run(quick_step(streamed=False))
    assert seqs(message) == [1, 2, 3]
    # Someone streams the run: its text comes as text, then the step.
    events, hel, lo, step_3 = asyncio.run(quick_step(streamed=True))
    assert seqs(events) == [1, 2] and [hel.delta, lo.delta] == ["Hel", "lo"]
    assert seqs(step_3) == [3]


def test_a_steps_text_goes_whole_once_it_began_to_go() -> None:
    async def slow_step(retried: bool) -> list[RunMessage]:
        topic = Topic()
        outbox = EventOutbox(topic.send, topic.schedule, linger=0.01)
        outbox.add(step("run_1", 1, 2))
        outbox.add(delta("Hel"))  # a slow model call: its text goes while it streams
        await topic.until(2)
        outbox.add(delta("Hi", attempt=2) if retried else delta("lo"))
        outbox.add(step("run_1", 3))  # the step completed before the rest went out
        outbox.add(step("run_2", 1))
        outbox.flush(text_of_ended_steps=False)
        await topic.settled()
        return topic.sent

    first, text, rest, step_3, other_run = asyncio.run(slow_step(retried=False))
    assert seqs(first) == [1, 2] and seqs(step_3) == [3] and seqs(other_run) == [1]
    assert [text.delta, rest.delta] == ["Hel", "lo"]
    assert other_run.run_id == "run_2"
    # A retry's text goes too: it is what withdraws "Hel" from the subscribers' screens.
    _, _, retry, _, _ = asyncio.run(slow_step(retried=True))
    assert (retry.delta, retry.attempt) == ("Hi", 2)


def test_what_comes_while_a_publish_is_in_flight_goes_next_in_order() -> None:
    async def busy_topic() -> list[RunMessage]:
        topic = Topic()
        topic.answers.clear()  # the sidecar is slow to answer
        outbox = EventOutbox(topic.send, topic.schedule, linger=60)
        outbox.add(step("run_1", 1))
        outbox.flush()
        await topic.in_flight.wait()
        outbox.add(step("run_1", 2))
        outbox.add(step("run_1", 3))
        outbox.flush()
        topic.answers.set()
        return await topic.until(2)

    first, second = asyncio.run(busy_topic())
    assert seqs(first) == [1] and seqs(second) == [2, 3]
