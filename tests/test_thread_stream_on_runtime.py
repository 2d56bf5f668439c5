"""A whole thread, live, on the split stack: two clients following one thread both see
every run, whoever starts it (a turn from a third client, a follow-up that came due);
an event's id resumes the stream across runs; deleting the thread ends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx

from tests.conftest import Api
from threadhost.client import ServerEvent, ThreadhostClient
from threadhost.stack import Stack

WAIT = 30.0


async def _until(
    events: AsyncIterator[ServerEvent], done: Callable[[list[ServerEvent]], bool]
) -> list[ServerEvent]:
    """The stream's events (token deltas aside) until `done` says enough."""
    seen: list[ServerEvent] = []

    async def read() -> None:
        async for event in events:
            if event.event not in ("token.delta", "token.discard"):
                seen.append(event)
            if done(seen):
                return

    await asyncio.wait_for(read(), WAIT)
    return seen


def _ended(count: int) -> Callable[[list[ServerEvent]], bool]:
    """Enough once `count` runs have completed."""
    return lambda seen: sum(_is_end(e) for e in seen) >= count


def _is_end(event: ServerEvent) -> bool:
    return event.event == "run.status" and event.data["data"]["status"] == "completed"


def test_two_clients_see_every_run_of_a_thread_whoever_starts_it(split_stack: Stack) -> None:
    api = Api(split_stack.api.url)
    thread = api.create_thread()

    async def scenario() -> tuple[list[ServerEvent], list[ServerEvent]]:
        tabs = [ThreadhostClient(split_stack.api.url) for _ in range(2)]
        # From the thread's first run (it has none yet): nothing is missed however soon
        # the third client talks.
        watching = [
            asyncio.create_task(_until(tab.thread_events(thread, after=""), _ended(2)))
            for tab in tabs
        ]
        async with httpx.AsyncClient(base_url=split_stack.api.url, timeout=WAIT) as other:
            first = await other.post(f"/v1/threads/{thread}/messages", json={"content": "one"})
            assert first.status_code == 200, first.text
            soon = await other.post(
                f"/v1/threads/{thread}/followups", json={"when": "PT2S", "note": "check in"}
            )
            assert soon.status_code == 201, soon.text
        left, right = await asyncio.gather(*watching)
        return left, right

    left, right = asyncio.run(scenario())
    assert [e.event_id for e in left] == [e.event_id for e in right]
    runs = list(dict.fromkeys(e.data["run_id"] for e in left))
    assert len(runs) == 2
    for event in left:
        assert event.event_id == f"{event.data['run_id']}.{event.data['seq']}"
    kinds = [(e.data["run_id"], e.event) for e in left]
    assert kinds[0] == (runs[0], "run.created")
    assert (runs[1], "run.created") in kinds
    # Run after run: every event of the first before any of the follow-up's.
    assert max(i for i, (r, _) in enumerate(kinds) if r == runs[0]) < min(
        i for i, (r, _) in enumerate(kinds) if r == runs[1]
    )
    steps = [e for e in left if e.event == "step.completed" and e.data["run_id"] == runs[1]]
    said = [m["text"] for s in steps for m in s.data["data"]["messages"]]
    assert said == ["Following up: check in"]


def test_an_event_id_resumes_the_stream_across_runs(split_stack: Stack) -> None:
    api = Api(split_stack.api.url)
    thread = api.create_thread()
    for text in ("one", "two", "three"):
        api.say(thread, text)
    page = api.http.get(f"/v1/threads/{thread}/events", params={"after": ""}).json()
    everything = [e["id"] for e in page["events"]]
    assert page["more"] is False and page["cursor"] == everything[-1]
    assert len({e["run_id"] for e in page["events"]}) == 3
    middle = everything[len(everything) // 3]

    async def resumed() -> list[ServerEvent]:
        client = ThreadhostClient(split_stack.api.url)
        return await _until(
            client.thread_events(thread, after=middle),
            lambda seen: bool(seen) and seen[-1].event_id == everything[-1],
        )

    assert [e.event_id for e in asyncio.run(resumed())] == everything[
        everything.index(middle) + 1 :
    ]
    # Without a point to start from, a stream of a quiet thread starts from now.
    assert api.http.get(f"/v1/threads/{thread}/events").json()["events"] == []
    unknown = api.http.get(f"/v1/threads/{thread}/events", params={"after": "run_nope.3"})
    assert unknown.status_code == 404
    bad = api.http.get(f"/v1/threads/{thread}/events", headers={"last-event-id": "../x"})
    assert bad.status_code == 422 and "last-event-id" in bad.text.lower()


def test_deleting_the_thread_ends_its_stream(split_stack: Stack) -> None:
    api = Api(split_stack.api.url)
    thread = api.create_thread()
    api.say(thread, "hello")

    async def scenario() -> list[ServerEvent]:
        client = ThreadhostClient(split_stack.api.url)
        other = httpx.AsyncClient(base_url=split_stack.api.url, timeout=WAIT)

        async def deleted_once_seen(seen: list[ServerEvent]) -> None:
            if len(seen) == 1:  # the stream is open: the thread goes
                assert (await other.delete(f"/v1/threads/{thread}")).status_code == 204

        seen: list[ServerEvent] = []

        async def read() -> None:
            async for event in client.thread_events(thread, after=""):
                seen.append(event)
                await deleted_once_seen(seen)
                if event.event == "thread.gone":
                    return

        await asyncio.wait_for(read(), WAIT)
        await other.aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0].event == "run.created" and seen[-1].event == "thread.gone"
    assert api.http.get(f"/v1/threads/{thread}/events").status_code == 404
