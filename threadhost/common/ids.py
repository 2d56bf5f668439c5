"""Identifiers: the ones threadhost hands out, and the one rule every id a caller or a
model names must meet before it goes anywhere near a URL.

An id travels in sidecar URLs (`/v1.0/actors/<type>/<id>/...`), reminder names and actor
keys. daprd resolves `..` in the paths it is sent, so an id is checked against one
alphabet where it enters (`Id` in request models, `checked_id` elsewhere) and every path
segment is quoted again where the URL is made (threadhost/common/sidecar.py)."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from typing import Annotated

from pydantic import Field

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)
# The same alphabet at any length: actor ids (owners in URL-safe base64 may be longer).
ACTOR_ID = re.compile(r"[A-Za-z0-9_-]+")

# A request model's field that names a thread, run, follow-up or call.
Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["th_7e9df6a3857a414db0471772481bc2c2"])]


class InvalidId(ValueError):
    """An id outside the alphabet: the message names what it was meant to be."""


def encoded_actor_id(text: str) -> str:
    """An actor id made of any text (an owner, a quota's scope, a bound): URL-safe base64,
    within the actor id alphabet whatever the text holds."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def checked_id(value: str, what: str = "id") -> str:
    """`value`, if it is an id: 1 to 64 of A-Z a-z 0-9 _ -."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidId(f"{what} must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
    return value


def new_thread_id() -> str:
    return "th_" + uuid.uuid4().hex


def keyed_thread_id(owner: str, key: str) -> str:
    """The thread a caller's request with this idempotency key makes: the same on every
    retry of the request, so a retry finds the thread the first attempt made (and one
    owner's key never names another owner's thread)."""
    return "th_" + hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()[:32]


# A caller's own key for a thread ("order-1001", "customer-4711:order-1001"): only data,
# hashed into the thread's id, never put in a URL.
THREAD_KEY_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
# Where a thread id is taken, `key:<key>` names the caller's thread of that key instead.
KEY_PREFIX = "key:"
THREAD_REF_PATTERN = r"^([A-Za-z0-9_-]{1,64}|key:[A-Za-z0-9_.:@-]{1,128})$"
_THREAD_REF = re.compile(THREAD_REF_PATTERN)

ThreadKey = Annotated[str, Field(pattern=THREAD_KEY_PATTERN, examples=["order-1001"])]


def thread_of_key(owner: str, key: str) -> str:
    """The owner's thread of this key: one id, whichever replica asks, however often (and
    never one that an idempotency key or another owner's key makes)."""
    return "th_" + hashlib.sha256(f"{owner}\nthread-key\n{key}".encode()).hexdigest()[:32]


def thread_key_of(ref: str) -> str | None:
    """The key in a thread reference `key:<key>`; None for a thread id."""
    return ref[len(KEY_PREFIX) :] if ref.startswith(KEY_PREFIX) else None


def checked_thread_ref(value: str, what: str = "thread id") -> str:
    """`value`, if it is a thread id or `key:` and a thread key."""
    if not isinstance(value, str) or _THREAD_REF.fullmatch(value) is None:
        raise InvalidId(
            f"{what} must be a thread id (1 to 64 of A-Z, a-z, 0-9, _ and -) or key: and "
            f"a key (1 to 128 of A-Z, a-z, 0-9, _ . : @ and -)"
        )
    return value
