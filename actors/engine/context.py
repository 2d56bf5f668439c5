"""What the model sees: a thread's history cut to a token budget, with a summary of what
no longer fits.

The budget is a share of the model's context window (known per model, or set per agent).
The request is counted as the vendor counted the last one that started at the same place
(its input plus the answer it gave), plus an estimate for what came after it; without such
a count, as an estimate calibrated by the vendor's last count. A window starts only at a
user's message, so a tool call and its result are never split; the system prompt, the
summary and the current run's messages are always in it, and a message larger than a
share of the budget is cut short in the request (never in the stored history).

When the part of the thread after the last summary no longer fits, it is compacted: the
older part, up to a user's message that leaves the recent part well inside the budget,
is summarized (with the previous summary) once, and later turns send summary + recent
messages until the budget is crossed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.usage import Usage, estimated_tokens

# Context windows (input and output) of known models, in tokens.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "o3": 200_000,
    "o4-mini": 200_000,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "claude-sonnet-4-5": 200_000,
    "claude-haiku-4-5": 200_000,
    "claude-opus-4-1": 200_000,
    "scripted": 32_000,
}
# For a model not listed (and not set by the agent or THREADHOST_CONTEXT_WINDOWS).
DEFAULT_CONTEXT_WINDOW = 32_000
# Tokens kept free for the answer when the agent sets no max_output_tokens.
DEFAULT_OUTPUT_RESERVE = 4_096
# Per message, for its role and framing in the vendor's format.
MESSAGE_OVERHEAD = 4


class ContextPolicy(BaseModel):
    """How much of the model's context window a request may use, and how the thread is
    compacted when its history no longer fits."""

    # The model's window in tokens; None: the known figure for the model, or the default.
    window_tokens: int | None = Field(default=None, ge=1024)
    # The share of the window (less the answer's reserve) a request may fill.
    share: float = Field(default=0.8, gt=0, le=1)
    # A hard cap on a request's tokens, below the share if smaller.
    max_input_tokens: int | None = Field(default=None, ge=256)
    # After a compaction, the recent messages kept whole fill at most this share of the
    # budget; the rest goes into the summary.
    keep_share: float = Field(default=0.5, gt=0, lt=1)
    # No single message takes more than this share of the budget (a huge tool result is
    # cut short in the request; the stored message stays whole).
    message_share: float = Field(default=0.25, gt=0, le=1)
    # The recipe that writes summaries ("vendor:model"); None: the agent's own model.
    summary_model: str | None = None


class SummaryRecord(BaseModel):
    """A summary of the thread's messages [0, end): stored once, under its own key."""

    schema_version: int = 1
    index: int
    text: str
    # It summarizes the previous summary (covering [0, start)) and messages [start, end).
    start: int
    end: int
    # Messages of [start, end) the summarizer did not see: they did not fit its request.
    omitted: int = 0
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class SummaryMark(BaseModel):
    """On the thread's record: its latest summary, without the text."""

    index: int
    end: int
    tokens: int


class ContextCount(BaseModel):
    """On the thread's record: the vendor's count of the last request, which sent messages
    [start, end) after the summary `summary` (-1: none), and what its answer took."""

    start: int
    end: int
    summary: int = -1
    tokens: int
    # The vendor's count over this code's estimate of the same request.
    ratio: float = 1.0


@dataclass(frozen=True)
class Budget:
    tokens: int
    message_cap: int
    keep: int

    @classmethod
    def of(
        cls,
        policy: ContextPolicy,
        model: str,
        max_output_tokens: int | None,
        windows: dict[str, int],
    ) -> Budget:
        window = (
            policy.window_tokens
            or windows.get(model)
            or CONTEXT_WINDOWS.get(model, DEFAULT_CONTEXT_WINDOW)
        )
        reserve = min(max_output_tokens or DEFAULT_OUTPUT_RESERVE, window // 4)
        tokens = int((window - reserve) * policy.share)
        if policy.max_input_tokens is not None:
            tokens = min(tokens, policy.max_input_tokens)
        return cls(
            tokens=tokens,
            message_cap=max(int(tokens * policy.message_share), 64),
            keep=int(tokens * policy.keep_share),
        )


def message_tokens(message: Message) -> int:
    """An estimate of what a message takes in a request."""
    if isinstance(message, ToolCall):
        text = message.name + message.arguments
    elif isinstance(message, ToolResult):
        text = message.content
    else:
        text = message.text
    return estimated_tokens(text) + MESSAGE_OVERHEAD


def fitted(message: Message, cap: int) -> Message:
    """The message as the request carries it: its text cut short past `cap` tokens."""
    if message_tokens(message) <= cap or isinstance(message, ToolCall):
        return message
    field = "content" if isinstance(message, ToolResult) else "text"
    text: str = getattr(message, field)
    keep = max(cap - MESSAGE_OVERHEAD - 16, 1) * 4
    note = f"\n[cut short here for the context window: {len(text) - keep} more characters]"
    return message.model_copy(update={field: text[:keep] + note})


def opens_window(message: Message) -> bool:
    """A window may start here: a message of the user's side that no tool call precedes
    unanswered."""
    return isinstance(message, UserText)


@dataclass(frozen=True)
class Window:
    """The request's messages: [start, end) of the history, after the summary (if any)."""

    start: int
    messages: list[Message]
    # The request's tokens: the vendor's count of the last request and an estimate of
    # what is new, when this one starts where that one did; else the calibrated estimate.
    tokens: int
    # The plain estimate, which the vendor's count of this request calibrates.
    estimate: int
    # Set when messages after the summary no longer fit: compact them up to here.
    compact_to: int | None = None


@dataclass(frozen=True)
class Context:
    """What the model sees at a run's next step."""

    window: Window
    # The system prompt, with the summary if any.
    system: str
    # The run's own messages, whole (the window may carry them cut short).
    run_messages: list[Message]


def half_cut(window: Window, run_first: int) -> int:
    """Where to compact to when the vendor refused the window: a user's message in the
    window that leaves about half of it (at the latest, the run's first message)."""
    sized = [message_tokens(m) for m in window.messages]
    used, half = 0, sum(sized) / 2
    for offset in range(len(sized) - 1, -1, -1):
        used += sized[offset]
        index = window.start + offset
        if used > half and index <= run_first and opens_window(window.messages[offset]):
            return index
    return run_first


def plan_window(
    tail: Sequence[Message],
    tail_start: int,
    run_first: int,
    fixed: int,
    budget: Budget,
    count: ContextCount | None,
    summary: SummaryMark | None,
) -> Window:
    """The messages a request sends, out of `tail`: the history's last messages from index
    `tail_start` on, which reach back to the summary's end (or to the run's first message
    and more than a budget before it). `fixed`: the estimated tokens of the system prompt
    and the tools."""
    end = tail_start + len(tail)
    floor = summary.end if summary is not None else 0
    ratio = count.ratio if count is not None else 1.0
    sized = [min(message_tokens(m), budget.message_cap) for m in tail]
    fixed += summary.tokens if summary is not None else 0
    room = budget.tokens - fixed
    used, start, overflow = 0.0, min(run_first, end), False
    # Back from the newest message, whole turns (a user's message opens one) while they
    # fit; the run's own messages always.
    for offset in range(len(tail) - 1, -1, -1):
        index = tail_start + offset
        used += sized[offset] * ratio
        if index >= run_first:
            continue
        if used > room:
            overflow = True
            break
        if opens_window(tail[offset]):
            start = index
    else:
        start = floor if tail_start <= floor else start
        overflow = start > floor
    cut = _cut(tail, tail_start, start, run_first, sized, ratio, budget.keep) if overflow else None
    if (
        count is not None
        and count.start == start
        and tail_start <= count.end <= end
        and count.summary == (summary.index if summary is not None else -1)
    ):
        exact = count.tokens + round(sum(sized[count.end - tail_start :]) * ratio)
        if exact <= budget.tokens or start >= run_first:
            return _window(tail, tail_start, start, fixed, sized, ratio, budget, cut, exact)
        # The vendor's own count says it no longer fits: send less, and compact.
        start = cut = _cut(tail, tail_start, start, run_first, sized, ratio, budget.keep)
    return _window(tail, tail_start, start, fixed, sized, ratio, budget, cut, None)


def _window(
    tail: Sequence[Message],
    tail_start: int,
    start: int,
    fixed: int,
    sized: list[int],
    ratio: float,
    budget: Budget,
    cut: int | None,
    exact: int | None,
) -> Window:
    kept = sized[start - tail_start :]
    return Window(
        start=start,
        messages=[fitted(m, budget.message_cap) for m in tail[start - tail_start :]],
        tokens=exact if exact is not None else round(fixed + sum(kept) * ratio),
        estimate=fixed + sum(kept),
        compact_to=cut,
    )


def _cut(
    tail: Sequence[Message],
    tail_start: int,
    start: int,
    run_first: int,
    sized: list[int],
    ratio: float,
    keep: int,
) -> int:
    """Where a compaction ends: the latest user's message that leaves at most `keep`
    tokens after it, but not past the run's first message (nor before `start`)."""
    used, cut = 0.0, max(run_first, start)
    for offset in range(len(tail) - 1, start - tail_start - 1, -1):
        index = tail_start + offset
        used += sized[offset] * ratio
        if index > run_first:
            continue
        if used > keep:
            break
        if opens_window(tail[offset]):
            cut = index
    return cut


def with_summary(system: str, summary: SummaryRecord | None) -> str:
    """The system prompt a request carries: the agent's, then the summary."""
    if summary is None:
        return system
    note = (
        f"Summary of the conversation's first {summary.end} messages, which are not "
        f"repeated below:\n{summary.text}"
    )
    return f"{system}\n\n{note}" if system else note


SUMMARY_PROMPT = (
    "You keep the memory of a long conversation between a user and an assistant. Write a "
    "concise summary of the conversation below for the assistant to carry on with: facts "
    "about the user, decisions, promises made, open questions, tool results still needed "
    "later. Start from the earlier summary, if there is one, and fold the new messages in. "
    "Write only the summary."
)


def transcript(previous: str | None, messages: Sequence[Message], omitted: int) -> str:
    """The summarizer's input: the earlier summary and the messages, as plain text."""
    lines = [f"Earlier summary:\n{previous}\n"] if previous else []
    if omitted:
        lines.append(f"[{omitted} earlier messages did not fit and are left out]")
    for message in messages:
        if isinstance(message, UserText):
            lines.append(f"user: {message.text}")
        elif isinstance(message, AssistantText):
            lines.append(f"assistant: {message.text}")
        elif isinstance(message, ToolCall):
            lines.append(f"assistant called {message.name}({message.arguments})")
        else:
            lines.append(
                f"{message.name} returned{' an error' if message.is_error else ''}: "
                f"{message.content}"
            )
    return "\n".join(lines)
