"""A scheduler restarted after a crash takes over its own leadership at once.

Dapr's scheduler (go-etcd-cron inside it) holds a leadership key in its embedded etcd,
bound to a lease that lives 20 s without keepalives. A scheduler that was SIGKILLed
leaves its key behind, and etcd, restarting with it, gives the dead lease its full 20 s
again: the new scheduler cannot write its own key until then, so it fires no reminder
or job and takes no actor host for about 21 s. The key's value names the address the
scheduler broadcasts, which the launcher picks anew at every start: a leadership key
that names another address is the dead process's, and revoking its lease (etcd's JSON
API, on the client port) lets the new one in at once. The launcher runs one scheduler,
so nothing else can hold that key.
"""

from __future__ import annotations

import base64
import logging
import threading
import time

import httpx

log = logging.getLogger(__name__)
# go-etcd-cron's key for the scheduler replica `dapr-scheduler-server-0` (its --id).
LEADERSHIP_KEY = "dapr/leadership/dapr-scheduler-server-0"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def take_over_leadership(
    etcd_url: str, address: str, timeout: float, stopped: threading.Event
) -> None:
    """Watches until the scheduler broadcasting `address` holds its leadership key,
    revoking a dead predecessor's lease on it (or until `stopped`, or `timeout`)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=etcd_url, timeout=2) as etcd:
        while time.monotonic() < deadline:
            try:
                kvs = (
                    etcd.post("/v3/kv/range", json={"key": _b64(LEADERSHIP_KEY.encode())})
                    .json()
                    .get("kvs", [])
                )
                for kv in kvs:
                    if address.encode() in base64.b64decode(kv.get("value", "")):
                        return
                    etcd.post("/v3/lease/revoke", json={"ID": kv["lease"]})
                    log.info("scheduler: revoked the leadership lease a crashed scheduler left")
            except httpx.HTTPError:
                pass  # etcd is not listening yet
            if stopped.wait(0.05):
                return
    log.warning("the scheduler did not take its leadership within %.0f s", timeout)
