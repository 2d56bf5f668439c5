"""Failover on the real runtime: the actor host holding a running run is harmed mid-step
(its sidecar killed, its app killed beside a live sidecar, both killed, both frozen), and
the run completes on the other host with nothing lost or written twice.

Each kind runs once in the normal suite; `./dev test -m slow tests/test_failover.py` runs
20 of each. How long each takes is measured by `./dev bench failover`, not asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.failover import KINDS, Bench
from bench.run import start_redis


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    folder = tmp_path_factory.mktemp("failover")
    redis_server, port = start_redis(folder, "redis-failover")
    hosts = Bench(folder, port, watchdog_seconds=2)
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.stop()
        redis_server.stop()


def _survives(bench: Bench, kind: str, rounds: int) -> None:
    for n in range(rounds):
        result = bench.round(kind)
        assert result.completed is not None, f"round {n + 1}: the run did not complete"
        assert result.damage == [], f"round {n + 1}: {result.damage}"
        # The step in flight is taken again; nothing else is.
        assert result.repeated_steps <= 1, f"round {n + 1}: {result}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_completes_elsewhere_when_its_host_is_harmed(bench: Bench, kind: str) -> None:
    _survives(bench, kind, 1)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", KINDS)
def test_twenty_harms_of_each_kind_lose_nothing(bench: Bench, kind: str) -> None:
    _survives(bench, kind, 20)
