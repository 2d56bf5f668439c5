"""Typed results: the JSON schema a run's final answer must match, and the check of it.

An agent file may declare `output_schema`, and a turn may ask for one (it then wins).
The vendor is asked for the schema in its structured-output mode where it has one; the
answer is checked here in every case. An answer that does not match is sent back to the
model once, with what was wrong; a second one that does not match fails the run, saying
why. The validated value is the run's `output`.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from actors.engine.text import JsonObject, Text

# How large a schema may be, as JSON: it travels with every model call of the run.
MAX_SCHEMA_BYTES = 32_768
# How many of an answer's problems the model is told about.
MAX_PROBLEMS = 8


class OutputSchema(BaseModel):
    """A JSON schema for the final answer, with the name vendors want for it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(default="output", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: Text | None = Field(default=None, max_length=1024)
    # JSON Schema (draft 2020-12). `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: JsonObject = Field(alias="schema")
    # Whether the vendor is asked to hold to the schema exactly (OpenAI's `strict`).
    strict: bool = True

    @field_validator("json_schema")
    @classmethod
    def _a_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(schema, ensure_ascii=False).encode())
        if size > MAX_SCHEMA_BYTES:
            raise ValueError(f"the schema is {size} bytes as JSON; at most {MAX_SCHEMA_BYTES}")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(map(str, exc.absolute_path)) or "the schema"
            raise ValueError(f"not a JSON schema ({where}: {exc.message})") from None
        if remote := [ref for ref in _refs(schema) if not ref.startswith("#")]:
            # Nothing is fetched to check an answer: a schema says all it needs itself.
            raise ValueError(f"only references within the schema are taken, not {remote[0]!r}")
        return schema


class Checked(BaseModel):
    """An answer checked against a schema: its value, or what is wrong with it."""

    value: Any = None
    problems: list[str] = Field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def check(schema: OutputSchema, text: str) -> Checked:
    """The answer's value if it is JSON that matches the schema, else its problems."""
    try:
        value = json.loads(_unfenced(text))
    except ValueError as exc:
        return Checked(problems=[f"the answer is not JSON ({exc})"])
    try:
        errors = sorted(
            Draft202012Validator(schema.json_schema).iter_errors(value), key=lambda e: e.path
        )
    except Exception as exc:  # a reference to nowhere, met on this answer's path
        return Checked(problems=[f"the schema cannot check it ({type(exc).__name__}: {exc})"])
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or 'the answer'}: {e.message}"
        for e in errors[:MAX_PROBLEMS]
    ]
    return Checked(value=None if problems else value, problems=problems)


def _refs(schema: Any) -> list[str]:
    """Every `$ref` in a schema."""
    found, stack = [], [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                found.append(node["$ref"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _unfenced(text: str) -> str:
    """The JSON of an answer a model wrapped in a Markdown code fence, as models without
    a structured-output mode often do."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        return inner.split("\n", 1)[1] if inner.startswith("json\n") else inner
    return stripped


def correction(schema: OutputSchema, checked: Checked) -> str:
    """What the model is told when its answer did not match the schema."""
    return (
        "Your last answer does not match the required output schema: "
        + "; ".join(checked.problems)
        + ". Answer again with only a JSON value that matches this schema: "
        + json.dumps(schema.json_schema, ensure_ascii=False)
    )


def failure(checked: Checked) -> str:
    """Why a run whose answer did not match, twice, failed."""
    return "output_schema: the answer did not match the schema after one retry: " + "; ".join(
        checked.problems
    )
