"""The one settings object: every tunable is read from THREADHOST_* variables here."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from actors.engine.quotas import Quotas
from actors.engine.retry import RetryPolicy
from actors.engine.usage import DEFAULT_PRICES, Price

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _json_or_commas(value: Any) -> Any:
    """A list from the environment: a JSON array, or names separated by commas."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)
    return [name.strip() for name in value.split(",") if name.strip()]


# A list of names: `a,b` and `["a", "b"]` both work in the environment.
Names = Annotated[list[str], NoDecode, BeforeValidator(_json_or_commas)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADHOST_", extra="ignore")

    # embedded: gateway and actor host in one app; split deployments run one role each.
    role: Literal["embedded", "gateway", "actors"] = "embedded"
    # A name for this process in stats and logs; the launcher sets one per process.
    instance: str = "threadhost"

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    otlp_endpoint: str | None = None
    trace_file: Path | None = None

    # Who may call: see gateway/auth.py. jwt is the default; none is for local development.
    auth_mode: Literal["jwt", "none"] = "jwt"
    jwt_secret: SecretStr | None = None
    jwt_jwks_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: Names = Field(default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    tenant_claim: str | None = None
    # Per caller, across gateway replicas; 0 turns a limit off (the local default).
    rate_limit_per_minute: int = Field(default=0, ge=0)
    max_concurrent_runs: int = Field(default=0, ge=0)
    # Follow-ups one thread may have scheduled at once (by its agent and through the API),
    # and one owner across all their threads (0: no bound).
    max_followups: int = Field(default=16, ge=0, le=256)
    max_followups_per_owner: int = Field(default=1000, ge=0)
    # A recurring follow-up comes due up to this long after its time (fixed per firing),
    # so follow-ups due at the same time do not reach the vendor at once.
    followup_jitter_seconds: float = Field(default=30, ge=0, le=3600)
    # Streams (server-sent events) one caller may hold open at once on one gateway replica.
    max_streams_per_caller: int = Field(default=32, ge=0)
    # Dapr app-ids allowed to call the gateway by service invocation.
    service_callers: Names = Field(default_factory=list)
    # Dapr's APP_API_TOKEN: daprd sends it with every call to the app.
    app_api_token: SecretStr | None = Field(default=None, validation_alias="APP_API_TOKEN")

    # Far above a step's length: deactivation cancels a call still running.
    actor_idle_timeout_seconds: float = Field(default=3600, gt=0)
    # When a host joins or goes, daprd blocks calls and actor-state writes to Thread
    # actors for up to the drain: a call in flight cannot commit meanwhile, so a longer
    # drain lets no step finish and stalls every thread (docs/deploy.md, "Timeouts").
    # Daprd caps it at 0.8 x its --actors-disseminate-timeout: say here what the sidecar
    # is given (dapr.io/actors-disseminate-timeout), 30 s when not set.
    drain_ongoing_call_timeout_seconds: float = Field(default=2, gt=0)
    actors_disseminate_timeout_seconds: float = Field(default=30, gt=0)
    drain_rebalanced_actors: bool = True
    actor_call_timeout_seconds: int = Field(default=60, gt=0)
    # How long the gateway keeps trying a call that is safe to repeat (a read, a turn
    # with its idempotency key) while the thread cannot be reached: a dead host's threads
    # move to another within seconds (docs/deploy.md, "When a host dies").
    failover_retry_seconds: float = Field(default=10, ge=0)
    # How long one read of a run or its events (a store read through the thread's
    # ThreadReader) may take before it is tried again: one that reached a host that froze
    # waits for that host, not for the store, and placement routes the next elsewhere.
    read_call_timeout_seconds: float = Field(default=2, gt=0)

    history_page_size: int = Field(default=32, ge=4, le=1000)
    # Context windows in tokens of models the engine does not know (or known ones, to
    # change), as JSON: {"my-model": 64000}. An agent's `context.window_tokens` wins.
    context_windows: dict[str, int] = Field(default_factory=dict)
    max_message_chars: int = Field(default=16_000, ge=1)
    # Request bodies larger than this are refused with 413 before they are read whole.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_history_limit: int = Field(default=500, ge=1)
    # Quick steps go on in the same actor turn (each still checkpointed) until the turn has
    # waited this long on something outside the host (a model, a tool's thread, daprd);
    # 0 makes every step an actor turn of its own. Time the event loop spent on other work
    # does not count, up to ten budgets of wall-clock time (actors/threads/chain_clock.py).
    step_chain_budget_ms: float = Field(default=100, ge=0)
    # Run events go out on this Dapr pub/sub component and topic; SSE streams send a
    # heartbeat comment this often so proxies keep them open.
    pubsub_name: str = "runevents"
    # When that component is Redis streams: where Redis is (as in the component) and this
    # replica's consumer group, named by daprd after POD_NAME (threadhost/event_groups.py).
    redis_host: str | None = None
    redis_password: SecretStr | None = None
    pod_name: str | None = Field(default=None, validation_alias="POD_NAME")
    # How often a replica says it is alive and removes the groups of stopped replicas.
    event_group_sweep_seconds: float = Field(default=30, gt=0)
    events_topic: str = "run-events"
    # Thread events for other services: CloudEvents on this component and topic ("" turns
    # them off), and the topic that carries webhook deliveries to the actor hosts.
    thread_events_pubsub: str = "threadevents"
    thread_events_topic: str = "thread-events"
    webhooks_topic: str = "thread-webhooks"
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    # Cancels go to every actor host here, so the one running the step can abort it.
    control_topic: str = "run-control"
    sse_heartbeat_seconds: float = Field(default=15, gt=0)
    # The watchdog job of a running run fires this often and resumes it if its host died:
    # about the longest a run without a caller waits for a new host (docs/deploy.md, "When
    # a host dies"). A run that ends within the period never sees it fire; a longer one
    # pays one job trigger and one actor call per period.
    run_watchdog_seconds: float = Field(default=3, ge=1)
    # How long a waiting (wait-mode) request waits for its run before answering 202.
    run_wait_seconds: float = Field(default=55, gt=0)
    # Agents as tools: how deep runs may ask other agents (a caller's run is depth 0), how
    # many child runs one run may start, and how often a run that waits for children
    # checks on them (the fallback when a child's end was not heard of: a host died).
    max_agent_depth: int = Field(default=3, ge=0)
    max_child_runs: int = Field(default=8, ge=0)
    child_run_check_seconds: float = Field(default=10, ge=1)

    # Folders of agent definitions (*.json), read in order; a later one may add versions.
    agents_dirs: list[Path] = Field(default_factory=lambda: [PROJECT_ROOT / "agents"])
    default_agent: str = "assistant"
    # The model of agents whose definition says "default"; empty: picked from the keys set.
    default_model: str = ""
    # Modules whose import registers more tools (comma-separated or a JSON array).
    tool_modules: Names = Field(default_factory=list)

    # A Dapr secret store to read the vendor keys from, at the first turn; its secret
    # `api_keys_secret` holds `openai-api-key` and `anthropic-api-key` (and
    # `assertion-signing-key`, `assertion-signing-key-previous`).
    secret_store: str | None = None
    api_keys_secret: str = "threadhost-api-keys"
    # The EC P-256 private key (PEM) that signs end-user assertions (actors/engine/
    # assertions.py); the secret store's `assertion-signing-key` when unset here. No
    # key: calls carry the end user's name unsigned.
    assertion_signing_key: SecretStr | None = None
    assertion_issuer: str = "threadhost"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    provider_timeout_seconds: float = Field(default=120, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # Concurrent model calls across every host, per vendor or model (actors/threads/
    # model_slots.py), e.g. {"openai": 50, "openai:gpt-4o": 10}.
    model_concurrency: dict[str, int] = Field(default_factory=dict)
    # How long a step waits for a model slot in its turn; past it, the step keeps its
    # place and its thread is woken when the slot comes (a turn is never held long: a
    # host's drain waits for the turns in flight).
    model_slot_wait_seconds: float = Field(default=1, gt=0)
    # What owners, end users and tenants may spend per day and month (actors/engine/
    # quotas.py), e.g. {"end_user": {"day": {"tokens": 200000}}}.
    quotas: Quotas = Field(default_factory=Quotas)
    # Overrides and additions to the price table, e.g. {"my-model": {"input": 1, "output": 2}}.
    prices: dict[str, Price] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _drain_fits_dissemination(self) -> Settings:
        if self.drain_ongoing_call_timeout_seconds > 0.8 * self.actors_disseminate_timeout_seconds:
            raise ValueError(
                "THREADHOST_DRAIN_ONGOING_CALL_TIMEOUT_SECONDS must be at most 0.8 x "
                "THREADHOST_ACTORS_DISSEMINATE_TIMEOUT_SECONDS (daprd's "
                "--actors-disseminate-timeout, 30 s unless set): daprd cuts the drain there"
            )
        return self

    @model_validator(mode="after")
    def _service_callers_are_app_ids(self) -> Settings:
        # An owner `app:<app-id>/user:<user>` is a service's end user only if no app-id
        # holds a '/' (threadhost/common/owners.py).
        for app_id in self.service_callers:
            if not app_id or "/" in app_id:
                raise ValueError(f"THREADHOST_SERVICE_CALLERS: {app_id!r} is not an app-id")
        return self

    def price_table(self) -> dict[str, Price]:
        return {**DEFAULT_PRICES, **self.prices}

    def resolved_default_model(self) -> str:
        if self.default_model:
            return self.default_model
        if self.openai_api_key or os.environ.get("OPENAI_API_KEY"):
            return "openai:gpt-4o-mini"
        if self.anthropic_api_key or os.environ.get("ANTHROPIC_API_KEY"):
            return "anthropic:claude-haiku-4-5"
        return "scripted"


@lru_cache
def get_settings() -> Settings:
    return Settings()
