"""A value that matches a JSON schema, for the scripted model's structured answers.

Not a general generator: it covers what structured-output schemas use (objects with
required properties, arrays, enums and constants, the scalar types, `anyOf`, local `$ref`
into `$defs`), filling every string with the scripted text.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 16
# A schema's minimums are followed up to these (a scripted answer stays small).
MAX_ITEMS, MAX_CHARS = 16, 4096


def example(schema: dict[str, Any], text: str) -> Any:
    return _value(schema, schema, text, 0)


def _value(node: Any, root: dict[str, Any], text: str, depth: int) -> Any:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in node:
        return _value(_resolved(node["$ref"], root), root, text, depth + 1)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for choice in ("anyOf", "oneOf", "allOf"):
        if node.get(choice):
            return _value(node[choice][0], root, text, depth + 1)
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    match kind:
        case "object":
            properties = node.get("properties", {})
            return {
                name: _value(properties.get(name, {}), root, text, depth + 1)
                for name in [*node.get("required", []), *properties]
            }
        case "array":
            return [
                _value(node.get("items", {}), root, text, depth + 1)
                for _ in range(min(int(node.get("minItems", 1)), MAX_ITEMS))
            ]
        case "integer":
            return int(node.get("minimum", 0))
        case "number":
            return node.get("minimum", 0)
        case "boolean":
            return True
        case "null":
            return None
        case _:
            return _string(node, text)


def _string(node: dict[str, Any], text: str) -> str:
    formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "email": "a@example.com"}
    if node.get("format") in formats:
        return formats[node["format"]]
    limit = node.get("maxLength")
    value = text if limit is None else text[:limit]
    return value.ljust(min(int(node.get("minLength", 0)), MAX_CHARS), ".")


def _resolved(ref: str, root: dict[str, Any]) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#") else []:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node
