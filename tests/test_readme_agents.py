"""Every agent file the README shows is one threadhost loads as written: each field known,
each tool one the host has."""

from __future__ import annotations

import re

import pytest

from actors.engine.agents import AgentDefinition
from actors.engine.followups import FOLLOWUP_TOOLS
from actors.engine.tool_set import ASK_USER
from actors.tools import build_registry
from threadhost.runtime import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
SHOWN = re.findall(r"<!-- agent: ([a-z0-9_-]+) -->\n```json\n(.*?)\n```", README, re.S)


def test_the_readme_shows_an_agent_for_each_long_lived_feature() -> None:
    assert {"concierge", "orders", "crm-notifier"} <= {name for name, _ in SHOWN}


@pytest.mark.parametrize(("name", "text"), SHOWN, ids=[name for name, _ in SHOWN])
def test_a_readme_agent_loads_as_written(name: str, text: str) -> None:
    agent = AgentDefinition.model_validate_json(text)
    assert agent.name == name
    # Extra fields would be ignored silently: every field given is one the model has.
    given = set(re.findall(r'^  "([a-z_]+)":', text, re.M))
    assert given <= set(AgentDefinition.model_fields), given - set(AgentDefinition.model_fields)
    registry = build_registry()
    for tool in agent.tools:
        assert tool in (ASK_USER, *FOLLOWUP_TOOLS) or registry.get(tool) is not None, tool
