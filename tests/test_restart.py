"""Stopping the whole stack and starting it again keeps every thread and its history."""

from tests.conftest import Api, conversation
from threadhost.stack import Stack


def _talk_restart_talk(config, stacks) -> None:
    first = Stack(config)
    stacks.append(first)
    first.start()
    api = Api(first.api.url)
    thread = api.create_thread()
    api.say(thread, "before the restart")
    first.stop()

    second = Stack(config)
    stacks.append(second)
    second.start()
    api = Api(second.api.url)
    assert api.history(thread) == conversation("before the restart")
    api.say(thread, "after the restart")
    assert api.history(thread) == conversation("before the restart", "after the restart")


def test_sqlite_profile_keeps_threads_across_a_restart(stack_config, stacks) -> None:
    _talk_restart_talk(stack_config(), stacks)


def test_redis_profile_keeps_threads_across_a_restart(stack_config, stacks, redis_server) -> None:
    config = stack_config("redis", env={"THREADHOST_REDIS_HOST": redis_server})
    _talk_restart_talk(config, stacks)


def test_postgres_profile_keeps_threads_across_a_restart(stack_config, stacks,
                                                        postgres_server) -> None:
    config = stack_config("postgres", env={"THREADHOST_POSTGRES_URL": postgres_server})
    _talk_restart_talk(config, stacks)
