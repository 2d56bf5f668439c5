"""Identifiers threadhost hands out."""

from __future__ import annotations

import uuid


def new_thread_id() -> str:
    return "th_" + uuid.uuid4().hex
