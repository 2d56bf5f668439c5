"""The host says in its log when its event loop was held long enough to worry daprd's
health probe, so an operator sees why a host lost its actors."""

import asyncio
import logging
import time

from threadhost.loop_stalls import LOGGED_STALL_SECONDS, watch_stalls


def test_a_held_event_loop_is_logged_and_a_busy_one_is_not(caplog) -> None:
    async def hold(seconds: float) -> None:
        watcher = asyncio.create_task(watch_stalls())
        await asyncio.sleep(0.1)
        time.sleep(seconds)  # noqa: ASYNC251 - what a blocking call on the loop does
        await asyncio.sleep(0.1)
        watcher.cancel()

    with caplog.at_level(logging.WARNING, logger="threadhost.loop_stalls"):
        asyncio.run(hold(0.05))
        assert not caplog.records
        asyncio.run(hold(LOGGED_STALL_SECONDS + 0.1))
    [record] = caplog.records
    assert "the event loop was held" in record.getMessage()
