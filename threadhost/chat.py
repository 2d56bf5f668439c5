"""`threadhost chat`: talk to a thread from the terminal, replies streamed as they come."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx

from threadhost.client import ThreadhostClient, ThreadhostError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("THREADHOST_URL",
                                                        "http://127.0.0.1:8000"),
                        help="the gateway (default $THREADHOST_URL or http://127.0.0.1:8000)")
    parser.add_argument("--thread", help="continue this thread (default: a new one)")
    parser.add_argument("--agent", help="the agent of a new thread")
    parser.add_argument("--model", help="this session's model recipe, e.g. openai:gpt-4o-mini")
    parser.add_argument("--token", default=os.environ.get("THREADHOST_TOKEN"),
                        help="a bearer token (default $THREADHOST_TOKEN)")


async def chat(args: argparse.Namespace) -> int:
    async with ThreadhostClient(args.url, token=args.token) as th:
        try:
            thread = (await th.thread(args.thread) if args.thread
                      else await th.create_thread(agent=args.agent))
        except ThreadhostError as exc:
            print(f"threadhost: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"threadhost: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
            return 1
        print(f"thread {thread.id} (agent {thread.agent}); Ctrl-D ends", file=sys.stderr)
        loop = asyncio.get_running_loop()
        while True:
            if sys.stdin.isatty():
                print("> ", end="", flush=True, file=sys.stderr)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return 0
            if not line.strip():
                continue
            try:
                await _turn(th, thread.id, line.rstrip("\n"), args.model)
            except (ThreadhostError, httpx.HTTPError) as exc:
                print(f"threadhost: {exc or type(exc).__name__}", file=sys.stderr)


async def _turn(th: ThreadhostClient, thread_id: str, text: str, model: str | None) -> None:
    streamed = False
    async for event in th.stream(thread_id, text, model=model):
        if event.event == "token.delta":
            print(event.data["text"], end="", flush=True)
            streamed = True
        elif event.event == "step.completed":
            for message in event.data["data"]["messages"]:
                if message["kind"] == "tool_call":
                    print(f"[{message['name']} {message['arguments']}]", file=sys.stderr)
                elif message["kind"] == "assistant_text":
                    # Whole here when no deltas came (the step ended before they could).
                    print("" if streamed else message["text"], flush=True)
            streamed = False
        elif event.event == "run.status" and event.data["data"]["status"] not in (
                "running", "completed"):
            print(f"[run {event.data['data']['status']}]", file=sys.stderr, flush=True)
