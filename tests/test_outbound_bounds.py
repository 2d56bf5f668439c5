"""What a caller or a model can make the host do, bounded, in process: which models a turn
may use, what they cost (priced by the names vendors really answer with), how often a
follow-up may come, where a webhook may go and how it is signed, what may label a metric,
how many streams a caller holds, and which header bytes are a token."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from actors.dapr_host.engine_setup import build_engine
from actors.engine.agents import AgentDefinition, Limits
from actors.engine.engine import ModelRefused
from actors.engine.followups import FollowupError, answer_call, new_followup
from actors.engine.loop import run_until_done, start_run
from actors.engine.messages import Message, ToolCall, UserText
from actors.engine.providers.anthropic_messages import AnthropicMessages
from actors.engine.providers.openai_chat import OpenAIChat
from actors.engine.recipes import Providers, UnknownRecipe, VendorAccess
from actors.engine.retry import RetryPolicy
from actors.engine.tool_set import build_tool_set
from actors.engine.usage import DEFAULT_PRICES, price_of
from actors.engine.webhooks import WebhookDefinition, signature
from actors.threads import metrics
from actors.tools import build_registry
from gateway.auth import same_token
from gateway.problems import Problem
from gateway.run_stream import STREAM_QUEUE, RunEventHub
from tests.fakes.vendor_server import VendorServer
from tests.fakes.wire import (
    ANTHROPIC_SNAPSHOT,
    OPENAI_SNAPSHOT,
    Answer,
    AnthropicWire,
    OpenAIChatWire,
)
from tests.test_thread_service import SETTINGS
from threadhost.common.owners import ANONYMOUS, person_owner

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

# --- models a caller may choose ------------------------------------------------------------


def test_a_caller_may_choose_only_the_models_its_agent_allows() -> None:
    engine = build_engine(SETTINGS, {})
    engine.catalog.add(
        AgentDefinition(
            name="picky", model="openai:gpt-4o-mini", allowed_models=["anthropic:claude-haiku-4-5"]
        )
    )
    assert engine.agent("picky").model == "openai:gpt-4o-mini"
    assert engine.agent("picky", "openai:gpt-4o-mini").model == "openai:gpt-4o-mini"
    assert engine.agent("picky", "anthropic:claude-haiku-4-5").model == (
        "anthropic:claude-haiku-4-5"
    )
    for refused in ("openai:gpt-4o", "openai:o1-pro", "scripted", "anthropic:claude-opus-4"):
        with pytest.raises(ModelRefused, match="model: .*" + refused.split(":")[-1]):
            engine.agent("picky", refused)
    # By default a caller picks nothing but the agent's own.
    engine.catalog.add(AgentDefinition(name="plain", model="openai:gpt-4o-mini"))
    with pytest.raises(ModelRefused, match="none"):
        engine.agent("plain", "openai:gpt-4o")
    # A recipe that is none at all says so first.
    with pytest.raises(UnknownRecipe, match="unknown vendor"):
        engine.agent("plain", "nope:thing")


def test_the_provider_cache_stays_flat_after_a_thousand_model_names() -> None:
    providers = Providers(
        VendorAccess(openai_api_key="sk-unused", openai_base_url="http://127.0.0.1:9/v1")
    )

    async def make(count: int, start: int) -> None:
        for n in range(start, start + count):
            await providers.for_agent(AgentDefinition(name="a", model=f"openai:model-{n}"))

    asyncio.run(make(100, 0))  # the SDK imported, the cache full
    tracemalloc.start()
    try:
        asyncio.run(make(100, 100))
        after_200, _ = tracemalloc.get_traced_memory()
        asyncio.run(make(900, 200))
        after_1100, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(providers) <= 16
    # Each client kept for good was about 0.8 MiB: 900 more would be ~700 MiB.
    assert after_1100 - after_200 < 8 * 1024 * 1024, (after_200, after_1100)


# --- what a model costs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,priced_as",
    [
        (OPENAI_SNAPSHOT, "gpt-4o-mini"),
        ("openai:gpt-4o-mini", "gpt-4o-mini"),
        ("openai-responses:gpt-4o-2024-08-06", "gpt-4o"),
        (ANTHROPIC_SNAPSHOT, "claude-haiku-4-5"),
        ("anthropic:claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("scripted", "scripted"),
    ],
)
def test_prices_resolve_for_dated_and_prefixed_names(name, priced_as) -> None:
    assert price_of(name, DEFAULT_PRICES) == DEFAULT_PRICES[priced_as]


def test_a_model_without_a_price_is_no_model_for_a_cost_budget() -> None:
    engine = build_engine(SETTINGS, {})
    engine.catalog.add(
        AgentDefinition(
            name="thrifty", model="openai:gpt-9-preview", limits=Limits(max_cost_usd=0.5)
        )
    )
    engine.catalog.add(
        AgentDefinition(
            name="summing",
            model="openai:gpt-4o-mini",
            limits=Limits(max_cost_usd=0.5),
            context={"summary_model": "openai:mystery"},
        )
    )
    for name, unpriced in (("thrifty", "gpt-9-preview"), ("summing", "mystery")):
        with pytest.raises(ModelRefused, match=f"{unpriced}.*no known price"):
            engine.agent(name)
    priced = SETTINGS.model_copy(update={"prices": {"gpt-9-preview": {"input": 1, "output": 2}}})
    engine = build_engine(priced, {})
    engine.catalog.add(
        AgentDefinition(
            name="thrifty", model="openai:gpt-9-preview", limits=Limits(max_cost_usd=0.5)
        )
    )
    assert engine.agent("thrifty").model == "openai:gpt-9-preview"


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_cost_budget_trips_against_the_vendors_own_answers(vendor) -> None:
    """The vendors answer with a dated snapshot name and their real usage fields; the
    run is priced by it, and its budget ends it."""
    server = VendorServer().start()
    try:
        wire = OpenAIChatWire() if vendor == "openai" else AnthropicWire()
        calls = (("call_1", "query_order", '{"order_id": "1001"}'),)
        server.queue(
            wire.reply(Answer(calls=calls, input_tokens=2000, output_tokens=500)),
            wire.reply(Answer(text="It has shipped.")),
        )
        provider = (
            OpenAIChat("gpt-4o-mini", api_key="sk-x", base_url=f"{server.url}/v1")
            if vendor == "openai"
            else AnthropicMessages("claude-haiku-4-5", api_key="sk-x", base_url=server.url)
        )
        recipe = "openai:gpt-4o-mini" if vendor == "openai" else "anthropic:claude-haiku-4-5"
        agent = AgentDefinition(
            name="a", model=recipe, tools=["query_order"], limits=Limits(max_cost_usd=0.0005)
        )
        tools = build_registry()
        run, events = start_run("run_1", "th_1", agent, build_tool_set(agent, tools), 0)
        history: list[Message] = [UserText(text="Where is order 1001?")]
        asyncio.run(
            run_until_done(
                run,
                history,
                provider,
                tools,
                DEFAULT_PRICES,
                RetryPolicy(attempts=1, base_delay=0, max_delay=0),
            )
        )
    finally:
        server.stop()
    first = run.model_calls[0]
    assert first.model in (OPENAI_SNAPSHOT, ANTHROPIC_SNAPSHOT)
    assert first.cost_usd > 0.0005
    assert run.status == "incomplete" and len(run.model_calls) == 1, run.reason


# --- follow-ups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when,says",
    [
        ("cron * * * * * *", "exactly five fields"),
        ("cron */1 * * * * *", "exactly five fields"),
        ("cron 0 * * * * * 2027", "exactly five fields"),
        ("cron * * * *", "exactly five fields"),
        ("P" + "9" * 5000 + "D", "400 days"),
        ("PT" + "1" * 5000 + "S", "400 days"),
        ("every P" + "7" * 4400 + "W", "400 days"),
        ("every PT59S", "at least a minute"),
    ],
)
def test_a_schedule_that_would_come_too_often_or_cannot_be_read_is_refused(when, says) -> None:
    with pytest.raises(FollowupError, match=says):
        new_followup(when, "check", "api", NOW)
    # The agent's tool answers with the same reason, as the tool's error.
    call = ToolCall(
        call_id="c1",
        name="schedule_followup",
        arguments=json.dumps({"when": when, "note": "check"}),
    )
    followups, result = answer_call(call, [], 16, NOW)
    assert followups == [] and result.is_error and says in result.content


# --- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "allowed,url,allows",
    [
        ("https://crm.example.com", "https://crm.example.com@evil.net/x", False),
        ("https://crm.example.com", "https://crm.example.com:443@169.254.169.254/", False),
        ("https://crm.example.com", "https://crm.example.com.evil.net/x", False),
        ("https://crm.example.com", "https://user:pw@crm.example.com/x", False),
        ("https://crm.example.com", "https://crm.example.com:8443/x", False),
        ("https://crm.example.com", "http://crm.example.com/x", False),
        ("https://crm.example.com", "https://crm.example.com/x\ty", False),
        ("https://crm.example.com", "https://crm.example.com/x", True),
        ("https://crm.example.com", "https://CRM.example.com:443/x?y=1", True),
        ("https://crm.example.com/hooks/", "https://crm.example.com/hooks/../../admin", False),
        ("https://crm.example.com/hooks/", "https://crm.example.com/hooks/%2e%2e/admin", False),
        ("https://crm.example.com/hooks/", "https://crm.example.com/hooks/a%2F..%2F..%2Fb", False),
        ("https://crm.example.com/hooks/", "https://crm.example.com/hooksevil", False),
        ("https://crm.example.com/hooks/", "https://crm.example.com/hooks/threads", True),
        ("https://crm.example.com/hooks", "https://crm.example.com/hooks/threads", True),
    ],
)
def test_a_thread_may_name_a_webhook_only_within_its_agents_urls(allowed, url, allows) -> None:
    definition = WebhookDefinition(secret="s", allowed_urls=[allowed])
    assert definition.allows(url) is allows


@pytest.mark.parametrize(
    "stored,receiver_secret",
    [
        # The Standard Webhooks form: the receiver is given the same string.
        (
            "whsec_" + base64.b64encode(b"k" * 32).decode(),
            "whsec_" + base64.b64encode(b"k" * 32).decode(),
        ),
        # A secret of plain text (as before): the receiver is given whsec_ + its base64.
        ("orders-signing-secret", "whsec_" + base64.b64encode(b"orders-signing-secret").decode()),
    ],
)
def test_a_signature_verifies_with_the_official_library(stored, receiver_secret) -> None:
    body, event_id, stamp = b'{"id": "run_1.0"}', "run_1.0", int(time.time())
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(stored, event_id, stamp, body),
    }
    assert Webhook(receiver_secret).verify(body, headers) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver_secret).verify(body + b" ", headers)


# --- what the open side can be made to hold ------------------------------------------------


def test_only_tool_names_the_host_knows_label_the_tool_metric() -> None:
    metrics.know_tools(["query_order"])
    assert metrics.tool_label("query_order") == "query_order"
    assert metrics.tool_label("made_up_by_the_model_42") == "other"


def test_a_caller_holds_a_bounded_number_of_streams_each_with_a_bounded_queue() -> None:
    hub = RunEventHub(per_owner=2)
    first, second = hub.listen("run_1", "ann"), hub.listen("run_2", "ann")
    with pytest.raises(Problem) as refused:
        hub.listen("run_3", "ann")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"]
    assert hub.listen("run_3", "bob") is not None  # another caller is not held back
    first.close()
    first.close()  # closing twice frees one slot, not two
    hub.listen("run_3", "ann")
    with pytest.raises(Problem):
        hub.listen("run_4", "ann")
    for n in range(STREAM_QUEUE * 3):  # a reader that never reads
        hub.deliver({"run_id": "run_2", "thread_id": "th_1", "n": n})
    assert second.queue.qsize() == STREAM_QUEUE


@pytest.mark.parametrize("sent", ["tök€n", "token\u00ff", b"\xff\xfe", "", "x" * 1000])
def test_a_token_header_of_any_bytes_is_simply_not_the_token(sent) -> None:
    assert same_token(sent, "the-app-token") is False
    assert same_token("the-app-token", "the-app-token") is True


def test_a_person_named_anonymous_is_not_everyone_without_authentication() -> None:
    assert person_owner("anonymous") != ANONYMOUS
    assert person_owner("anonymous", "acme") == "acme/anonymous"
    assert person_owner("anon") == "anon"


def test_no_value_leaves_its_segment_of_a_sidecar_url() -> None:
    from threadhost.common.ids import InvalidId
    from threadhost.common.sidecar import _actor, _method_path, segment

    assert _actor("Thread", "th_1", ("PostMessage", "method")) == (
        "/actors/Thread/th_1/method/PostMessage"
    )
    assert _actor("Thread", "th_1", ("followup.fu_1", "reminder"), "reminders") == (
        "/actors/Thread/th_1/reminders/followup.fu_1"
    )
    assert segment("a/b?c#d%e", "topic") == "a%2Fb%3Fc%23d%25e"
    assert _method_path("tools/invoices:lookup") == "tools/invoices%3Alookup"
    for hostile in ("..", ".", "", "th_1/../..", "../../shutdown?", "th_\u00e9", "a\u0000"):
        with pytest.raises(InvalidId) as refused:
            _actor("Thread", hostile, ("Describe", "method"))
        assert hostile not in str(refused.value) or not hostile  # never echoed
    for hostile in ("..", ".", "", "a\u0000"):
        with pytest.raises(InvalidId):
            segment(hostile, "reminder")
