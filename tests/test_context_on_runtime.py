"""Context that fits, on the runtime: a thread outgrows its agent's small budget in the
split shape; its older messages are compacted into a summary stored in the actor's state,
the model's requests stay small, and the whole history stays readable."""

from __future__ import annotations

from tests.conftest import Api, start_apps


def test_a_thread_that_outgrows_its_budget_is_compacted_and_kept_whole(
    stack_config, stacks
) -> None:
    _, gateway = start_apps(stack_config(), stacks, "actors", "gateway")
    api = Api(gateway.url)
    thread = api.create_thread(agent="chatty")
    summaries = []
    for n in range(30):
        answer = api.say(thread, f"Message {n}: " + "tell me more about the weather " * 3)
        assert answer["run"]["status"] == "completed", answer
        summaries += [c for c in answer["run"]["model_calls"] if c["purpose"] == "summary"]
        turns = [c for c in answer["run"]["model_calls"] if c["purpose"] == "turn"]
        # The scripted model counts the words it was sent: never the whole thread.
        assert turns[-1]["usage"]["input_tokens"] < 300
    # A small budget is crossed again every few turns; a turn pays for one at most, and
    # a compaction leaves room for more than one turn.
    assert 2 <= len(summaries) <= 15
    history = api.messages(thread)
    assert len(history) == 60
    assert history[0]["content"].startswith("Message 0: ")
