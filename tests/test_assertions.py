"""End-user assertions, in-process: what a service tool, an MCP server and a webhook get
when the thread belongs to a service's end user, verified with the published key set as
a receiving service would (PyJWT), and a key rotation that keeps old assertions valid."""

from __future__ import annotations

import jwt
import pytest

from actors.engine.assertions import AssertionSigner, BadSigningKey
from actors.engine.events import WebhookDelivery
from actors.engine.run import ActingFor
from actors.engine.service_tools import ToolCallContext
from actors.engine.webhooks import WebhookDefinition
from tests.conftest import assertion_signing_key
from threadhost.common.owners import end_user_of, end_user_owner


def _verified(token: str, signer: AssertionSigner, audience: str) -> dict:
    keys = jwt.PyJWKSet.from_dict(signer.key_set())
    kid = jwt.get_unverified_header(token)["kid"]
    [key] = [k for k in keys.keys if k.key_id == kid]
    return jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer="threadhost")


def test_a_tool_call_and_an_mcp_call_carry_the_end_user_signed_for_their_receiver() -> None:
    signer = AssertionSigner.from_pem(assertion_signing_key(), "threadhost")
    acting_for = end_user_of(end_user_owner("support-portal", "customer 4711/ü"))
    assert acting_for == ActingFor(service="support-portal", user="customer 4711/ü")
    context = ToolCallContext("th_1", "run_1", "call_1", acting_for).signed(signer, "billing")
    headers = context.headers()
    assert headers["threadhost-end-user"] == "customer 4711/ü"
    claims = _verified(headers["threadhost-end-user-assertion"], signer, "billing")
    assert (claims["sub"], claims["azp"], claims["call_id"]) == (
        "customer 4711/ü",
        "support-portal",
        "call_1",
    )
    assert claims["exp"] - claims["iat"] == 300
    meta = context.mcp_meta()
    assert meta["threadhost/end-user-assertion"] == headers["threadhost-end-user-assertion"]
    # Meant for billing: another service cannot replay it as its own.
    with pytest.raises(jwt.InvalidAudienceError):
        _verified(headers["threadhost-end-user-assertion"], signer, "ledger")


def test_without_an_end_user_or_a_key_nothing_is_signed() -> None:
    signer = AssertionSigner.from_pem(assertion_signing_key(), "threadhost")
    plain = ToolCallContext("th_1", "run_1", "call_1").signed(signer, "billing")
    assert not any(h.startswith("threadhost-end-user") for h in plain.headers())
    unsigned = ToolCallContext("th_1", "run_1", "call_1", ActingFor(service="p", user="u"))
    assert unsigned.signed(None, "billing").headers()["threadhost-end-user"] == "u"
    assert "threadhost-end-user-assertion" not in unsigned.headers()


def test_a_rotated_key_still_verifies_what_the_previous_one_signed() -> None:
    old, new = assertion_signing_key(), assertion_signing_key()
    before = AssertionSigner.from_pem(old, "threadhost")
    token = before.sign(ActingFor(service="p", user="u"), "billing")
    after = AssertionSigner.from_pem(new, "threadhost", previous_pem=old)
    assert len(after.key_set()["keys"]) == 2
    assert _verified(token, after, "billing")["sub"] == "u"


@pytest.mark.parametrize(
    "pem", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
)
def test_a_bad_key_is_refused_without_quoting_it(pem: str) -> None:
    with pytest.raises(BadSigningKey) as refused:
        AssertionSigner.from_pem(pem, "threadhost")
    assert pem not in str(refused.value)


def test_a_webhook_delivery_of_an_end_users_thread_names_them() -> None:
    from actors.engine.events import ThreadEvent
    from actors.threads.deliveries import deliveries
    from actors.threads.state import ThreadRecord
    from tests.test_thread_service import ENGINE

    agent = ENGINE.catalog.current("support").model_copy(
        update={
            "webhook": WebhookDefinition(url="https://crm.example.com/hooks", secret="s", key="k")
        }
    )
    record = ThreadRecord(
        thread_id="th_1", page_size=32, owner=end_user_owner("support-portal", "alice")
    )
    event = ThreadEvent(
        id="e1",
        source="/x",
        type="threadhost.run.completed",
        subject="th_1/run_1",
        time="2026-12-07T10:00:00Z",
        data={},
    )
    [delivery] = deliveries(record, agent, event)
    assert isinstance(delivery, WebhookDelivery)
    assert delivery.acting_for == ActingFor(service="support-portal", user="alice")
