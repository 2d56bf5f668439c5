"""Actor state as plain JSON, through the standard library's C parser.

The SDK's default serializer scans every string in pure Python (to turn date-like strings
into datetimes); state here is pydantic models dumped to JSON, so plain JSON is enough.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dapr.serializers.base import Serializer


class PlainJSONSerializer(Serializer):
    def serialize(self, obj: object,
                  custom_hook: Callable[[object], bytes] | None = None) -> bytes:
        return json.dumps(custom_hook(obj) if custom_hook else obj,
                          separators=(",", ":"), ensure_ascii=False).encode()

    def deserialize(self, data: bytes, data_type: type | None = object,
                    custom_hook: Callable[[bytes], object] | None = None) -> Any:
        obj = json.loads(data)
        return custom_hook(obj) if custom_hook else obj
