"""An idle thread is deactivated, and its next turn reactivates it with its full history."""

from tests.conftest import FAST_IDLE, Api, conversation, wait_for
from threadhost.stack import Stack


def test_an_idle_thread_is_deactivated_and_comes_back_whole(stack_config, stacks) -> None:
    stack = Stack(stack_config(env=FAST_IDLE))
    stacks.append(stack)
    stack.start()
    api = Api(stack.api.url)
    stats = stack.api.actor_stats

    thread = api.create_thread()
    api.say(thread, "remember me")
    assert thread in stats()["active"]
    activations = stats()["activations"]

    wait_for(lambda: thread not in stats()["active"], 30, "the idle thread to be deactivated")
    assert stats()["deactivations"] >= 1

    api.say(thread, "still there?")
    after = stats()
    assert thread in after["active"]
    assert after["activations"] == activations + 1
    assert api.history(thread) == conversation("remember me", "still there?")
