"""The one settings object: every tunable is read from THREADHOST_* variables here."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADHOST_", extra="ignore")

    # embedded: gateway and actor host in one app; split deployments run one role each.
    role: Literal["embedded", "gateway", "actors"] = "embedded"
    # A name for this process in stats and logs; the launcher sets one per process.
    instance: str = "threadhost"

    # Far above a step's length: deactivation cancels a call still running.
    actor_idle_timeout_seconds: float = Field(default=3600, gt=0)
    # Daprd caps the drain at 0.8 x --actors-disseminate-timeout (30 s by default).
    drain_ongoing_call_timeout_seconds: float = Field(default=10, gt=0, le=24)
    drain_rebalanced_actors: bool = True
    actor_call_timeout_seconds: int = Field(default=60, gt=0)

    history_page_size: int = Field(default=32, ge=4, le=1000)
    max_message_chars: int = Field(default=16_000, ge=1)
    max_history_limit: int = Field(default=500, ge=1)

    model: str = "scripted"

    @model_validator(mode="after")
    def _known_model(self) -> Settings:
        if self.model != "scripted":
            raise ValueError(f"model {self.model!r} is not available yet; use 'scripted'")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
