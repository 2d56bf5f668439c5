"""Any node serves any thread: when the host holding a thread dies, another takes over."""

import time

import pytest

from tests.conftest import Api, conversation, start_apps
from threadhost.stack import App


def active_threads(host: App) -> list[str]:
    return host.actor_stats()["active"]


@pytest.mark.parametrize("profile", ["sqlite", "postgres"])
def test_the_next_turn_succeeds_on_the_other_host_after_a_sigkill(
    stack_config, stacks, profile, request
) -> None:
    env = (
        {"THREADHOST_POSTGRES_URL": request.getfixturevalue("postgres_server")}
        if profile == "postgres"
        else {}
    )
    *hosts, gateway = start_apps(
        stack_config(profile, env=env), stacks, "actors", "actors", "gateway"
    )

    api = Api(gateway.url)
    thread = api.create_thread()
    api.say(thread, "first")
    api.say(thread, "second")
    holder, survivor = sorted(hosts, key=lambda h: thread not in active_threads(h))
    assert thread in active_threads(holder)

    holder.kill()
    killed_at = time.monotonic()
    response = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "third"}, timeout=60
    )
    takeover = time.monotonic() - killed_at
    print(f"\ntakeover: the first turn after SIGKILL answered in {takeover:.2f} s")

    assert response.status_code == 200, response.text
    assert thread in active_threads(survivor)
    assert api.history(thread) == conversation("first", "second", "third")
