"""Keeps the run-event streams' consumer groups bounded when pub/sub is Redis streams.

Every replica reads the streams through a consumer group of its own (the component's
`consumerID` is `{podName}`), so that each gets every event. Redis keeps a group until
someone deletes it, and Dapr never does: after each rollout the old pods' groups would
stay for good. Redis cannot tell a dead replica's group from an idle one's (an empty
read does not refresh a consumer's idle time before Redis 7.2), so each replica says it
is alive: a key with a short expiry, renewed on every sweep. A sweep deletes the groups
whose replica has not said so on two sweeps in a row (a replica that is just starting
has one sweep's time to say it). Deleting its own group at exit would not do: its daprd,
still draining, recreates a missing group at once. Streams themselves are trimmed by the
component (`maxLenApprox`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)
LIVE_KEY = "threadhost:replica-alive:"


@dataclass
class StreamGroups:
    host: str  # host:port, as the component's redisHost
    password: str | None
    group: str  # this replica's group: daprd's POD_NAME
    streams: tuple[str, ...]  # the topics this replica subscribes to
    sweep_seconds: float = 30.0
    _suspects: set[tuple[str, str]] = field(default_factory=set)

    def client(self) -> redis.Redis:
        host, _, port = self.host.rpartition(":")
        return redis.Redis(
            host=host or self.host,
            port=int(port or 6379),
            password=self.password or None,
            socket_timeout=5,
        )

    async def sweep(self, client: redis.Redis) -> list[str]:
        """Says this replica is alive, then deletes the groups of replicas that did not
        say so on this sweep nor the last; returns them as `stream/group`."""
        await client.set(LIVE_KEY + self.group, b"1", ex=int(self.sweep_seconds * 3))
        removed, silent = [], set()
        for stream in self.streams:
            try:
                groups = [_text(info["name"]) for info in await client.xinfo_groups(stream)]
            except ResponseError:  # no such stream yet
                continue
            for name in groups:
                if name == self.group or await client.exists(LIVE_KEY + name):
                    continue
                if (stream, name) in self._suspects:
                    await client.xgroup_destroy(stream, name)
                    removed.append(f"{stream}/{name}")
                else:
                    silent.add((stream, name))
        self._suspects = silent
        return removed

    async def leave(self, client: redis.Redis) -> None:
        """No longer alive: the next sweeps of other replicas delete this one's groups."""
        await client.delete(LIVE_KEY + self.group)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GroupKeeper:
    """Sweeps over an app's life, once its sidecar says that the run-event component
    is Redis streams (it may answer only after the app has started)."""

    def __init__(
        self,
        groups: StreamGroups | None,
        sidecar_metadata: Callable[[], Awaitable[dict[str, Any]]],
        pubsub_name: str,
    ) -> None:
        self._groups, self._metadata, self._pubsub = groups, sidecar_metadata, pubsub_name
        self._task: asyncio.Task[None] | None = None
        self._swept = False

    def start(self) -> None:
        if self._groups is not None:
            self._task = asyncio.create_task(self._keep(self._groups))

    async def _keep(self, groups: StreamGroups) -> None:
        if not await self._redis_streams():
            return
        async with groups.client() as client:
            while True:
                try:
                    if removed := await groups.sweep(client):
                        log.info("removed the run-event groups of stopped replicas: %s", removed)
                    self._swept = True
                except RedisError as exc:
                    log.warning("run-event groups not swept: %s", type(exc).__name__)
                await asyncio.sleep(groups.sweep_seconds)

    async def _redis_streams(self) -> bool:
        for attempt in range(120):  # daprd may answer after the app has started
            try:
                components = (await self._metadata()).get("components", [])
            except Exception:  # noqa: BLE001 - daprd not reachable yet: ask again
                await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
                continue
            return any(
                c.get("name") == self._pubsub and c.get("type") == "pubsub.redis"
                for c in components
            )
        log.warning("the sidecar's metadata did not answer: run-event groups are not kept")
        return False

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        if self._groups is not None and self._swept:
            try:
                async with self._groups.client() as client:
                    await self._groups.leave(client)
            except RedisError as exc:
                log.warning("this replica did not say it left: %s", type(exc).__name__)
