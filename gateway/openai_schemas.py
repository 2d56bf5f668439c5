"""The OpenAI Chat Completions API's bodies, as threadhost takes and gives them.

What a request may carry is checked here: text content only, one choice, no log
probabilities, no audio, no forced tool choice; a response format of text, JSON or a JSON
schema (the run's output schema). Each refusal names its
field (docs/openai.md lists what is taken, ignored and refused). Sampling settings
(temperature, top_p, max_tokens, ...) are taken and ignored: an agent's own settings
decide.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from actors.engine.output import OutputSchema
from actors.engine.text import JsonObject, Text, printable
from actors.engine.tool_sources import object_schema
from threadhost.common.ids import ID_PATTERN, checked_thread_ref

# `model` is an agent's name, or `<agent>@<recipe>` for this turn's model.
MODEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}(@[A-Za-z0-9:._/-]{1,200})?$"


def text_parts_only(content: Any, kinds: set[str]) -> Any:
    """Refuses a content list with parts of other kinds than `kinds` (images, audio,
    files): threadhost's messages are text."""
    if isinstance(content, list):
        # Shown as they can be written: a kind may hold anything a caller sent.
        others = sorted(
            {
                printable(part.get("type"))[:40] if isinstance(part, dict) else type(part).__name__
                for part in content
            }
            - kinds
        )
        if others:
            raise ValueError(f"only text content is supported, not {', '.join(others)}")
    return content


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: Text


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=ID_PATTERN)
    arguments: Text = "{}"


class ChatToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    # A vendor's call id, sent back as it came: only data, never a path.
    id: Text = Field(max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: Text | None = Field(default=None, max_length=200)
    name: Text | None = Field(default=None, max_length=200)

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, content: Any) -> Any:
        return text_parts_only(content, {"text"})

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # As long as a client tool's (actors/engine/tool_set.py): refused here, naming it.
    description: Text | None = Field(default=None, max_length=1024)
    parameters: JsonObject = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        return object_schema(parameters)


class ChatTool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    """`response_format: {"type": "json_schema", "json_schema": {...}}`: the answer's
    content is JSON that matches the schema (checked, and retried once)."""

    type: Literal["json_schema"]
    json_schema: OutputSchema


class JsonObjectFormat(BaseModel):
    """`{"type": "json_object"}` (JSON mode): the content is a JSON object."""

    type: Literal["json_object"]


class TextFormat(BaseModel):
    type: Literal["text"]


ResponseFormat = Annotated[
    TextFormat | JsonSchemaFormat | JsonObjectFormat, Field(discriminator="type")
]
# JSON mode, as a schema: any object (not strict: a strict schema names its properties).
ANY_OBJECT = OutputSchema(name="json_object", schema={"type": "object"}, strict=False)


def output_schema_of(
    fmt: TextFormat | JsonSchemaFormat | JsonObjectFormat | None,
) -> OutputSchema | None:
    """The schema a response format asks the answer to match, if any."""
    if isinstance(fmt, JsonSchemaFormat):
        return fmt.json_schema
    return ANY_OBJECT if isinstance(fmt, JsonObjectFormat) else None


class ChatCompletionRequest(BaseModel):
    # Fields the API has that threadhost does not use are taken and ignored.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "support",
                    "messages": [{"role": "user", "content": "Where is my order 1001?"}],
                },
                # The results of the client tool calls the thread's run waits for.
                {
                    "model": "support",
                    "metadata": {"thread_id": "th_7e9df6a3857a414db0471772481bc2c2"},
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {
                            "role": "user",
                            "name": "ann",
                            "content": [{"type": "text", "text": "Where am I?"}],
                        },
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "call_3_0",
                                    "type": "function",
                                    "function": {"name": "get_location", "arguments": "{}"},
                                }
                            ],
                        },
                        {"role": "tool", "tool_call_id": "call_3_0", "content": "Berlin"},
                    ],
                    "tools": [
                        {
                            "type": "function",
                            "function": {
                                "name": "get_location",
                                "description": "Where the user is.",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"unit": {"type": "string"}},
                                },
                            },
                        }
                    ],
                },
            ]
        },
    )
    model: str = Field(
        pattern=MODEL_PATTERN, examples=["support", "support@anthropic:claude-haiku-4-5"]
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Tools the client runs itself: a call comes back as `tool_calls`.
    tools: list[ChatTool] = Field(default_factory=list, max_length=64)
    tool_choice: Literal["auto"] | None = None
    n: Literal[1] | None = None
    logprobs: Literal[False] | None = None
    top_logprobs: None = None
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    # A typed answer: JSON matching a schema (`json_schema`), or any JSON object.
    response_format: ResponseFormat | None = None
    # Another way to name the thread to continue: {"thread_id": "th_..."} (or
    # {"thread_id": "key:order-1001"}, the caller's thread of that key).
    metadata: dict[Text, Text] | None = None

    @field_validator("metadata")
    @classmethod
    def _thread_id_is_an_id(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata and "thread_id" in metadata:
            # A ValueError: a 422 naming it.
            checked_thread_ref(metadata["thread_id"], "thread_id")
        return metadata


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ChatToolCall] | None = None


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ThreadhostInfo(BaseModel):
    """threadhost's own part of an answer: the thread and run behind it, and what a run
    that waits for something else than a client tool (an approval, an answer) waits for."""

    thread_id: str
    run_id: str
    status: str
    required_action: list[dict[str, Any]] = Field(default_factory=list)


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    threadhost: ThreadhostInfo


class ModelView(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "threadhost"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelView]
