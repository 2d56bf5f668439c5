"""Owners: the string every thread belongs to, of shapes no kind of caller can make
collide, and who may reach a thread of which owner.

    person              <sub>                       ':', '/' and '%' in a claim are
    person, tenant      <tenant>/<sub>              %-escaped: never a raw ':', never a
                                                    second '/'
    service             app:<app-id>                only a Dapr identity makes one
    service, end user   app:<app-id>/user:<user>    the service names the user it acts
                                                    for; the user %-escaped like a claim
    nobody              anonymous                   authentication off

Only a service's owner starts with `app:`, and an app-id holds no '/' (the settings refuse
one), so `app:<app-id>/user:` starts the owners of that service's end users and of no one
else's. A service reaches every thread of its end users; an end user's threads are theirs.
"""

from __future__ import annotations

from urllib.parse import unquote

from actors.engine.quotas import ScopeKind
from actors.engine.run import ActingFor

ANONYMOUS = "anonymous"
_SERVICE = "app:"
_END_USER = "/user:"


def escaped(claim: str) -> str:
    return claim.replace("%", "%25").replace(":", "%3A").replace("/", "%2F")


def person_owner(subject: str, tenant: str | None = None) -> str:
    """A person's owner string (unchanged from before namespacing for any claim without
    ':', '/' or '%', so existing threads keep their owner); never the owner of callers
    with authentication off (a subject `anonymous` has its first letter %-escaped)."""
    if tenant:
        return f"{escaped(tenant)}/{escaped(subject)}"
    owner = escaped(subject)
    return "%61" + owner[1:] if owner == ANONYMOUS else owner


def service_owner(app_id: str) -> str:
    return f"{_SERVICE}{app_id}"


def end_user_owner(app_id: str, end_user: str) -> str:
    return f"{service_owner(app_id)}{_END_USER}{escaped(end_user)}"


def end_user_of(owner: str) -> ActingFor | None:
    """The end user (and their service) an owner is, if it is a service's end user: who
    the thread's runs act for."""
    if not owner.startswith(_SERVICE) or _END_USER not in owner:
        return None
    service, user = owner[len(_SERVICE) :].split(_END_USER, 1)
    return ActingFor(service=service, user=unquote(user))


def is_service(owner: str) -> bool:
    """A service acting for nobody."""
    return owner.startswith(_SERVICE) and _END_USER not in owner


def owns(caller: str, owner: str) -> bool:
    """Whether the caller may reach a thread of `owner`: its own, or, for a service, one
    of its end users'."""
    if caller == owner:
        return True
    return is_service(caller) and owner.startswith(caller + _END_USER)


def spending_scopes(owner: str) -> list[tuple[ScopeKind, str]]:
    """Who a thread's spending counts against: its owner at the top (a service for all
    its end users), the end user, and a person's tenant."""
    end_user = end_user_of(owner)
    if end_user is not None:
        return [("owner", service_owner(end_user.service)), ("end_user", owner)]
    if not owner.startswith(_SERVICE) and "/" in owner:  # <tenant>/<sub>
        return [("owner", owner), ("tenant", owner.split("/", 1)[0])]
    return [("owner", owner)]
