"""The Python client, over plain HTTP and through a Dapr sidecar."""

import asyncio
import subprocess
import sys

import httpx
import pytest

from threadhost.client import Approval, ClientTool, ThreadhostClient, ThreadhostError, ToolOutput


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
        [sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url, "--agent", "support"],
        input="Where is my order 1001?\nThanks!\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chat.returncode == 0, chat.stderr
    shipped = "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    assert chat.stdout.count(shipped) == 2
    assert "[query_order" in chat.stderr and "thread th_" in chat.stderr
    thread = chat.stderr.split("thread ", 1)[1].split()[0]
    again = subprocess.run(
        [sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url, "--thread", thread],
        input="Bye\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and shipped in again.stdout


async def pauses(client: ThreadhostClient) -> None:
    async with client as th:
        located = await th.create_thread(agent="locator")
        location = ClientTool(name="get_location", parameters={"type": "object"})
        turn = await th.say(located.id, "Weather?", client_tools=[location])
        [action] = turn.run.required_action
        done = await th.resume(
            located.id, turn.run.run_id, [ToolOutput(call_id=action.call_id, output="Berlin")]
        )
        assert (done.run.status, done.reply) == ("completed", "Here is the weather where you are.")

        gated = await th.create_thread(agent="approvals")
        events = [e async for e in th.stream(gated.id, "Please cancel order 1002.")]
        assert events[-1].data["data"]["status"] == "requires_action"
        [action] = events[-1].data["data"]["required_action"]
        run_id = events[-1].data["run_id"]
        after = [
            e
            async for e in th.resume_stream(
                gated.id,
                run_id,
                [Approval(call_id=action["call_id"], approved=False, reason="keep it")],
            )
        ]
        # The stream goes on from the answer: no event of before the pause again.
        assert after[0].event == "actions.submitted" and after[0].id == events[-1].id + 1
        assert after[0].data["data"]["messages"][0]["content"] == "Denied by the user: keep it"
        assert after[-1].data["data"]["status"] == "completed"
        # A replay of the whole run does not stop at the pause that was answered.
        replay = [e async for e in th.events(gated.id, run_id)]
        assert [e.id for e in replay] == [e.id for e in events + after if e.id is not None]
        with pytest.raises(ThreadhostError) as late:
            await th.resume(gated.id, run_id, [Approval(call_id=action["call_id"], approved=True)])
        assert late.value.status == 409


def test_the_client_answers_pauses(stack) -> None:
    asyncio.run(pauses(ThreadhostClient(stack.api.url)))


@pytest.mark.parametrize(
    ("agent", "stdin", "shown"),
    [
        ("approvals", "Please cancel order 1002.\ny\n", '"status":"cancelled"'),
        ("approvals", "Please cancel order 1002.\nn\nnot today\n", "Denied by the user: not today"),
        ("asker", "Cancel my order.\nOrder 1002\n", "Which order do you mean?"),
    ],
)
def test_threadhost_chat_asks_for_what_a_run_waits_for(stack, agent, stdin, shown) -> None:
    chat = subprocess.run(
        [sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url, "--agent", agent],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chat.returncode == 0, chat.stderr
    final = {"approvals": "That is settled.", "asker": "Thanks, I have noted it."}[agent]
    assert chat.stdout.strip().endswith(final)
    thread = chat.stderr.split("thread ", 1)[1].split()[0]
    history = httpx.get(f"{stack.api.url}/v1/threads/{thread}/messages").json()["messages"]
    assert shown in chat.stderr or any(shown in m["content"] for m in history)


def test_a_run_paused_in_one_chat_is_answered_in_another(stack) -> None:
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "threadhost",
            "chat",
            "--url",
            stack.api.url,
            "--agent",
            "approvals",
        ],
        input="Please cancel order 1002.\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0 and "the run waits for its answer" in first.stderr
    thread = first.stderr.split("thread ", 1)[1].split()[0]
    second = subprocess.run(
        [sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url, "--thread", thread],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert "waits]" in second.stderr and "[approve cancel_order" in second.stderr
    assert second.stdout.strip() == "That is settled."
