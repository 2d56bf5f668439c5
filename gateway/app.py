"""Puts the gateway's routes and error handling on an app."""

from __future__ import annotations

from fastapi import FastAPI

from gateway import threads
from gateway.problems import install_problem_handlers
from gateway.thread_client import ThreadClient
from threadhost.settings import Settings


def mount_gateway(app: FastAPI, settings: Settings) -> None:
    app.state.thread_client = ThreadClient(settings.actor_call_timeout_seconds)
    app.include_router(threads.router)
    install_problem_handlers(app)
