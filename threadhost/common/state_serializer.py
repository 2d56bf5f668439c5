"""Actor state and actor method payloads as plain JSON, through the standard library's C
parser: every string arrives as it was sent.

The SDK's default decoder turns date- and duration-like strings ("2024-01-05", "1h30m")
into datetimes and timedeltas, and raises on near misses, so a user's text could change
or break on its way into an actor. Both the state and every method call, timer and
reminder callback go through these serializers instead (actors/dapr_host/host.py registers them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dapr.serializers import DefaultJSONSerializer
from dapr.serializers.base import Serializer


class PlainJSONSerializer(Serializer):
    def serialize(self, obj: object, custom_hook: Callable[[object], bytes] | None = None) -> bytes:
        return json.dumps(
            custom_hook(obj) if custom_hook else obj, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def deserialize(
        self,
        data: bytes,
        data_type: type | None = object,
        custom_hook: Callable[[bytes], object] | None = None,
    ) -> Any:
        obj = json.loads(data)
        return custom_hook(obj) if custom_hook else obj


class ActorMessageSerializer(DefaultJSONSerializer):
    """For the actor runtime's messages: written as the SDK writes them (its timer and
    reminder registrations carry timedeltas in Dapr's duration format), read as plain
    JSON. A reminder's due time and period then reach `receive_reminder` as daprd's
    strings, which the actors here do not read."""

    def deserialize(
        self,
        data: bytes,
        data_type: type | None = object,
        custom_hook: Callable[[bytes], object] | None = None,
    ) -> Any:
        obj = json.loads(data)
        return custom_hook(obj) if custom_hook else obj
