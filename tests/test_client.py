"""The Python client, over plain HTTP and through a Dapr sidecar."""

import asyncio
import subprocess
import sys

import pytest

from threadhost.client import ThreadhostClient, ThreadhostError


async def conversation(client: ThreadhostClient) -> None:
    async with client as th:
        thread = await th.create_thread(agent="support", metadata={"user": "u-1"})
        turn = await th.say(thread.id, "Where is my order 1001?")
        assert turn.reply == "Order 1001 has shipped and is with the carrier; it is due in 2 days."
        events = [e async for e in th.stream(thread.id, "And again?")]
        numbered = [e for e in events if e.id is not None]
        assert [e.id for e in numbered] == list(range(len(numbered)))
        assert numbered[-1].data["data"]["status"] == "completed"
        replay = [e async for e in th.events(thread.id, turn.run.run_id, after=3)]
        assert [e.id for e in replay] == list(range(4, turn.run.next_seq))
        runs = await th.runs(thread.id)
        assert runs.total == 2 and runs.runs[1].run_id == turn.run.run_id
        assert len((await th.history(thread.id)).messages) == 14
        with pytest.raises(ThreadhostError) as missing:
            await th.thread("th_nosuch")
        assert missing.value.status == 404
        await th.delete_thread(thread.id)


def test_the_client_over_http(stack) -> None:
    asyncio.run(conversation(ThreadhostClient(stack.api.url)))


def test_the_client_through_a_dapr_sidecar(stack) -> None:
    """The embedded app serves the gateway under the actor host's app-id."""
    client = ThreadhostClient.via_dapr(stack.config.actors_app_id, stack.api.dapr_http_port)
    asyncio.run(conversation(client))


def test_threadhost_chat_streams_replies_in_the_terminal(stack) -> None:
    """Lines on stdin are turns; replies (and tool calls) come back as they stream."""
    chat = subprocess.run(
        [sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url, "--agent",
         "support"], input="Where is my order 1001?\nThanks!\n", capture_output=True,
        text=True, timeout=60)
    assert chat.returncode == 0, chat.stderr
    shipped = "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    assert chat.stdout.count(shipped) == 2
    assert "[query_order" in chat.stderr and "thread th_" in chat.stderr
    thread = chat.stderr.split("thread ", 1)[1].split()[0]
    again = subprocess.run([sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url,
                            "--thread", thread], input="Bye\n", capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0 and shipped in again.stdout
