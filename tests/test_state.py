"""Thread state: paged history keeps what a turn writes bounded, and versions are checked."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.engine.messages import AssistantText, ToolCall, UserText
from actors.engine.run import RunRecord, RunTools, plan_next_step
from actors.engine.step import run_tool_set
from actors.threads.state import (
    HistoryPage,
    ThreadRecord,
    UnknownSchemaVersion,
    append_messages,
    page_range,
    read_stored,
)
from actors.tools import build_registry


def grow(record: ThreadRecord, pages: dict[int, HistoryPage], turns: int) -> ThreadRecord:
    for n in range(turns):
        tail = pages.get(record.tail_page_index(), HistoryPage(index=record.tail_page_index()))
        record, written = append_messages(
            record, tail, [UserText(text=f"q{n}"), AssistantText(text=f"a{n}")]
        )
        pages.update({p.index: p for p in written})
    return record


def test_history_is_split_into_pages_in_order() -> None:
    pages: dict[int, HistoryPage] = {}
    record = grow(ThreadRecord(thread_id="t", page_size=4), pages, turns=5)
    assert record.message_count == 10
    assert sorted(pages) == [0, 1, 2]
    texts = [m.text for i in sorted(pages) for m in pages[i].messages]
    assert texts == [t for n in range(5) for t in (f"q{n}", f"a{n}")]


def test_a_turn_writes_at_most_two_pages_however_long_the_thread() -> None:
    pages: dict[int, HistoryPage] = {}
    record = grow(ThreadRecord(thread_id="t", page_size=8), pages, turns=250)
    sizes = []
    for _ in range(20):
        tail = pages[record.tail_page_index()]
        record, written = append_messages(
            record, tail, [UserText(text="same size"), AssistantText(text="same size")]
        )
        pages.update({p.index: p for p in written})
        assert len(written) <= 2
        sizes.append(sum(len(p.model_dump_json()) for p in written))
    assert max(sizes) < 8 * 2 * 200  # bounded by the page size, not by 500 messages


def test_page_range_covers_exactly_the_requested_window() -> None:
    record = ThreadRecord(thread_id="t", page_size=10, message_count=35)
    assert list(page_range(record, 0, 100)) == [0, 1, 2, 3]
    assert list(page_range(record, 10, 10)) == [1]
    assert list(page_range(record, 9, 2)) == [0, 1]
    assert list(page_range(record, 35, 10)) == []


def test_stored_documents_of_an_unknown_version_are_refused() -> None:
    record = ThreadRecord(thread_id="t", page_size=4).model_dump(mode="json")
    assert read_stored(ThreadRecord, record).thread_id == "t"
    with pytest.raises(UnknownSchemaVersion):
        read_stored(ThreadRecord, {**record, "schema_version": 99})
    with pytest.raises(UnknownSchemaVersion):
        read_stored(HistoryPage, {"index": 0, "messages": []})


FIXTURES = Path(__file__).parent / "fixtures" / "state"


def test_documents_stored_before_pauses_and_retention_are_read_as_they_were() -> None:
    """Written by the code of before tool sets and retention (kept as stored fixtures)."""
    run = read_stored(RunRecord, json.loads((FIXTURES / "run-v1-before-pauses.json").read_text()))
    assert (run.tools, run.required_action, run.deadline) == (None, [], None)
    # Its tools are the agent's, run by the host: a call of one never pauses it.
    call = ToolCall(call_id="c1", name="query_order", arguments='{"order_id": "1001"}')
    assert isinstance(plan_next_step(run, [UserText(text="hi"), call]), RunTools)
    assert [t.name for t in run_tool_set(run, build_registry())] == [
        "query_order",
        "query_logistics",
    ]
    record = read_stored(
        ThreadRecord, json.loads((FIXTURES / "thread-v1-before-pauses.json").read_text())
    )
    assert record.retention_seconds is None and not record.expired(datetime.now(UTC))
