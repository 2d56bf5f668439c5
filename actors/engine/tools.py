"""Function tools: typed Python functions the model may call, with schemas from their hints.

A tool never crashes a run: bad arguments from the model, a timeout and an exception the
function raises all become a ToolResult with `is_error`, which goes back to the model.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from functools import cached_property
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_json

from actors.engine.messages import ToolCall, ToolResult
from actors.engine.provider import ToolSpec


class Tool:
    def __init__(self, fn: Callable[..., Any], name: str, description: str) -> None:
        self.fn, self.name, self.description = fn, name, description
        self.arguments_model = _arguments_model(fn, name)

    @cached_property
    def spec(self) -> ToolSpec:
        """Made once: a JSON schema from type hints costs more than the rest of a step."""
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    async def invoke(self, call: ToolCall, time_limit: float) -> ToolResult:
        def error(text: str) -> ToolResult:
            return ToolResult(call_id=call.call_id, name=self.name, content=text, is_error=True)

        try:
            arguments = self.arguments_model.model_validate_json(call.arguments or "{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            return error(f"invalid arguments for {self.name}: {problems}")
        kwargs = dict(arguments)
        try:
            async with asyncio.timeout(time_limit):
                if inspect.iscoroutinefunction(self.fn):
                    result = await self.fn(**kwargs)
                else:
                    result = await asyncio.to_thread(self.fn, **kwargs)
        except TimeoutError:
            return error(f"{self.name} did not finish within {time_limit:g} s")
        except Exception as exc:  # noqa: BLE001 - any tool failure goes back to the model
            return error(f"{self.name} failed: {type(exc).__name__}: {exc}")
        content = result if isinstance(result, str) else to_json(result).decode()
        return ToolResult(call_id=call.call_id, name=self.name, content=content)


def function_tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Makes a Tool of `fn`; usable bare (`@function_tool`) or with arguments."""

    def make(f: Callable[..., Any]) -> Tool:
        doc = inspect.getdoc(f) or ""
        return Tool(f, name or f.__name__, description or doc.split("\n\n")[0])

    return make(fn) if fn is not None else make


def _arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """One model of the function's parameters gives both the schema the model sees and
    the validation of its arguments, so they cannot disagree: what the author wrote in
    `Annotated[..., Field(...)]` (descriptions, bounds, patterns) holds in both, and
    unknown arguments are refused (`additionalProperties: false`, as strict modes want)."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


class ToolRegistry:
    """Tools by name; agents refer to tools by these names."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> Tool:
        self._tools[tool.name] = tool
        return tool

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)


def unknown_tool_result(call: ToolCall) -> ToolResult:
    return ToolResult(
        call_id=call.call_id,
        name=call.name,
        is_error=True,
        content=f"there is no tool named {json.dumps(call.name)}",
    )
