"""Who hears of a thread's events besides the gateways: the webhooks of the thread and of
its agent (each gets every event as a signed POST, from the actor host's deliverer)."""

from __future__ import annotations

from actors.engine.agents import AgentDefinition
from actors.engine.events import A2APush, ThreadEvent, WebhookDelivery
from actors.engine.run import PushTarget
from actors.threads.state import ThreadRecord
from threadhost.common.owners import end_user_of


def deliveries(
    record: ThreadRecord,
    agent: AgentDefinition,
    event: ThreadEvent,
    push: list[PushTarget] | None = None,
) -> list[WebhookDelivery]:
    """The event once per webhook URL: the agent's own, and the thread's (which the agent
    allowed when the thread was created); and once per A2A push target of its run (a
    state change: not its creation)."""
    webhook = agent.webhook
    if webhook is None:
        return []
    urls = [str(webhook.url)] if webhook.url is not None else []
    if record.webhook_url is not None and record.webhook_url not in urls:
        urls.append(record.webhook_url)
    acting_for = end_user_of(record.owner)
    found = [
        WebhookDelivery(
            url=url,
            agent=agent.name,
            secret=webhook.secret,
            key=webhook.key,
            event=event,
            acting_for=acting_for,
        )
        for url in urls
    ]
    if event.type == "threadhost.run.created":
        return found
    return found + [
        WebhookDelivery(
            url=target.url,
            agent=agent.name,
            secret=webhook.secret,
            key=webhook.key,
            event=event.model_copy(update={"id": f"{event.id}.push.{target.id}"}),
            acting_for=acting_for,
            a2a=A2APush(config_id=target.id, token=target.token),
        )
        for target in push or []
    ]
