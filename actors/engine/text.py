"""What the API accepts as text: any Unicode string that UTF-8 can carry, except NUL.

A JSON string may escape a lone UTF-16 surrogate (`"\\ud800"`) that no UTF-8 encoder,
state store or vendor accepts, and a NUL (`"\\u0000"`) that PostgreSQL's JSON refuses
and C-based tools cut at. Every string a caller sends (message text, metadata, tool
schemas, tool outputs, answers) is checked once, where it enters, by these types: such a
string is refused with a 422 naming its field, and everything else arrives as sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# For the OpenAPI document only (the check below refuses with a clearer message): a NUL
# never matches; a lone surrogate cannot be written in a pattern every tool reads.
TEXT_PATTERN = r"^[^\u0000]*$"


def text_problem(value: str) -> str | None:
    """Why `value` is not text, or None."""
    if "\x00" in value:
        return f"a NUL character (\\u0000) at character {value.index(chr(0))} is not text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone UTF-16 surrogate at character {exc.start} is not text"
    return None


def printable(value: object) -> str:
    """A value (a field name, a key) as it can be shown in an answer: a lone surrogate
    is written as its escape, so the answer itself can be encoded."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise PydanticCustomError("not_text", problem)
    return value


def check_json_text(value: Any) -> Any:
    """Every string of a JSON value, keys included, is text."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        strings: list[tuple[str, str]] = []
        if isinstance(item, str):
            strings.append((item, path))
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{printable(key)}" if path else printable(key)
                strings.append((key, f"{where} (a key)"))
                stack.append((inner, where))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{n}]") for n, inner in enumerate(item))
        for string, where in strings:
            if (problem := text_problem(string)) is not None:
                raise PydanticCustomError(
                    "not_text",
                    "{where}: {problem}",
                    {"where": where or "value", "problem": problem},
                )
    return value


Text = Annotated[
    str, AfterValidator(check_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
# A JSON object a caller declares (a tool's JSON schema), whose strings are all text.
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_text)]
