"""Consumer groups of stopped replicas leave the run-event streams; live ones stay."""

import asyncio
from pathlib import Path

import redis

from tests.conftest import running_redis
from threadhost.event_groups import StreamGroups


def test_a_silent_replicas_group_goes_on_the_second_sweep_and_no_live_one_does(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as host:
        plain = redis.Redis.from_url(f"redis://{host}")
        for group in ("gateway-a", "gateway-b", "gateway-gone"):
            plain.xgroup_create("run-events", group, "0", mkstream=True)
        mine = StreamGroups(host, None, "gateway-a", ("run-events",))
        other = StreamGroups(host, None, "gateway-b", ("run-events",))

        async def sweeps() -> list[list[str]]:
            found = []
            async with mine.client() as a, other.client() as b:
                await other.sweep(b)  # gateway-b says it is alive
                found.append(await mine.sweep(a))  # gateway-gone: silent once
                found.append(await mine.sweep(a))  # and twice: removed
                await other.leave(b)  # gateway-b stops
                found.append(await mine.sweep(a))
                found.append(await mine.sweep(a))
            return found

        assert asyncio.run(sweeps()) == [
            [],
            ["run-events/gateway-gone"],
            [],
            ["run-events/gateway-b"],
        ]
        assert [g["name"] for g in plain.xinfo_groups("run-events")] == [b"gateway-a"]
