"""`threadhost chat`: talk to a thread from the terminal, replies streamed as they come."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from threadhost.client import (
    Answer,
    Approval,
    ServerEvent,
    Submission,
    ThreadhostClient,
    ThreadhostError,
    ToolOutput,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("THREADHOST_URL", "http://127.0.0.1:8000"),
        help="the gateway (default $THREADHOST_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument("--thread", help="continue this thread (default: a new one)")
    parser.add_argument("--agent", help="the agent of a new thread")
    parser.add_argument("--model", help="this session's model recipe, e.g. openai:gpt-4o-mini")
    parser.add_argument(
        "--token",
        default=os.environ.get("THREADHOST_TOKEN"),
        help="a bearer token (default $THREADHOST_TOKEN)",
    )


async def chat(args: argparse.Namespace) -> int:
    async with ThreadhostClient(args.url, token=args.token) as th:
        try:
            thread = (
                await th.thread(args.thread)
                if args.thread
                else await th.create_thread(agent=args.agent)
            )
            # A run of the thread that waits (paused before, maybe by another process) first.
            pending = await _waiting(th, thread.id, thread.active_run)
        except ThreadhostError as exc:
            print(f"threadhost: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"threadhost: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
            return 1
        print(f"thread {thread.id} (agent {thread.agent}); Ctrl-D or Ctrl-C ends", file=sys.stderr)
        while True:
            try:
                paused, pending = pending, None
                await _answer(th, thread.id, paused)
                line = await _read_line("> " if sys.stdin.isatty() else "")
                if not line:
                    return 0
                if line.strip():
                    pending = await _show(th.stream(thread.id, line.rstrip("\n"), model=args.model))
            except (ThreadhostError, httpx.HTTPError) as exc:
                print(f"threadhost: {exc or type(exc).__name__}", file=sys.stderr)
            except EOFError as exc:
                print(f"threadhost: {exc}; the run waits for its answer", file=sys.stderr)
                return 0


async def _waiting(
    th: ThreadhostClient, thread_id: str, run_id: str | None
) -> tuple[str, list[dict]] | None:
    """The thread's active run and what it waits for, if it is waiting."""
    run = await th.run(thread_id, run_id) if run_id else None
    yours = (
        [action.model_dump() for action in run.required_action if action.type != "agent_run"]
        if run is not None
        else []
    )
    if run is None or run.status != "requires_action" or not yours:
        return None
    print(f"[run {run.run_id} waits]", file=sys.stderr)
    return run.run_id, yours


async def _answer(
    th: ThreadhostClient, thread_id: str, pending: tuple[str, list[dict]] | None
) -> None:
    """Asks for each thing a paused run waits for (an approval, an answer, a client
    tool's result), resumes it and shows the rest, until it no longer waits."""
    while pending is not None:
        run_id, actions = pending
        answers = [await _ask(action) for action in actions]
        pending = await _show(th.resume_stream(thread_id, run_id, answers))


async def _show(events: AsyncIterator[ServerEvent]) -> tuple[str, list[dict]] | None:
    """Prints a run's events; the run's id and what it waits for, if it paused."""
    streamed, paused = False, None
    async for event in events:
        data = event.data.get("data", {})
        if event.event == "token.delta":
            print(event.data["text"], end="", flush=True)
            streamed = True
        elif event.event == "token.discard":
            # A retried model call starts over: the text above was thrown away.
            print("\n[the model call was retried; its answer follows]", file=sys.stderr, flush=True)
        elif event.event in ("step.completed", "actions.submitted", "approval.expired"):
            _show_messages(data["messages"], streamed)
            streamed = False
        elif event.event == "run.status":
            paused = _show_status(event.data["run_id"], data)
    return paused


def _show_messages(messages: list[dict], streamed: bool) -> None:
    """A step's messages: tool calls and failed results aside, the text unless it came
    as deltas already."""
    for message in messages:
        if message["kind"] == "tool_call":
            print(f"[{message['name']} {message['arguments']}]", file=sys.stderr)
        elif message["kind"] == "assistant_text":
            # Whole here when no deltas came (the step ended before they could).
            print("" if streamed else message["text"], flush=True)
        elif message["kind"] == "tool_result" and message["is_error"]:
            print(f"[{message['name']}: {message['content']}]", file=sys.stderr)


def _show_status(run_id: str, data: dict) -> tuple[str, list[dict]] | None:
    """A run's new status; the run and what the person is asked, if it waits for them."""
    status, actions = data["status"], data.get("required_action") or []
    for action in actions:
        if action["type"] == "agent_run":
            print(f"[asking the agent {action['agent']}]", file=sys.stderr, flush=True)
    if status not in ("running", "completed", "requires_action"):
        print(f"[run {status}]", file=sys.stderr, flush=True)
    # Another agent's answer comes by itself: only the caller's actions are asked.
    yours = [a for a in actions if a["type"] != "agent_run"]
    return (run_id, yours) if status == "requires_action" and yours else None


async def _ask(action: dict) -> Submission:
    """Asks the person at the terminal for what one pending call waits for."""
    call_id, tool = action["call_id"], action["tool"]
    if action["type"] == "approval":
        line = await _prompt(f"[approve {tool} {action['arguments']}? y/n] ")
        if line.strip().lower() in ("y", "yes"):
            return Approval(call_id=call_id, approved=True)
        reason = await _prompt("[reason for the denial] ")
        return Approval(call_id=call_id, approved=False, reason=reason.strip() or None)
    if action["type"] == "input":
        return Answer(call_id=call_id, answer=(await _prompt(f"{action['question']}\n> ")).strip())
    output = await _prompt(f"[client tool {tool} {action['arguments']}: its result] ")
    return ToolOutput(call_id=call_id, output=output.strip())


async def _prompt(text: str) -> str:
    line = await _read_line(text)
    if not line:
        raise EOFError("standard input ended while the run waits")
    return line


async def _read_line(prompt: str) -> str:
    """A line from standard input ("" at its end), with line editing and history at a
    terminal. It is read on a daemon thread, so Ctrl-C ends the program at once rather
    than after the next Enter."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            if sys.stdin.isatty():
                line = input(prompt) + "\n"  # readline's editing, history and redraw
            else:
                print(prompt, end="", flush=True, file=sys.stderr)
                line = sys.stdin.readline()
        except EOFError:
            line = ""
        except Exception as exc:  # noqa: BLE001 - handed to the waiting coroutine
            loop.call_soon_threadsafe(_settle, answer, None, exc)
            return
        loop.call_soon_threadsafe(_settle, answer, line, None)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await answer


def _settle(future: asyncio.Future[str], line: str | None, error: Exception | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(line or "")


HISTORY = (
    Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    / "threadhost"
    / "chat_history"
)


@contextlib.contextmanager
def terminal() -> Iterator[None]:
    """Line editing and a history kept across sessions at a terminal; the terminal's
    settings come back as they were however the program ends (Ctrl-C included)."""
    if not sys.stdin.isatty():
        yield
        return
    import readline
    import termios

    saved = termios.tcgetattr(sys.stdin.fileno())
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)
    try:
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            HISTORY.parent.mkdir(parents=True, exist_ok=True)
            readline.set_history_length(1000)
            readline.write_history_file(HISTORY)
