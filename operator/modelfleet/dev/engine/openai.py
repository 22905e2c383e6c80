"""The OpenAI-compatible wire format the emulator speaks (pure: parsing, bodies, SSE framing).

Only what the emulator needs: one prompt per request, `n = 1`. Token counts drive the timing
model, so the parser's job is to find them:

- output tokens: `max_tokens` (chat: `max_completion_tokens` first), default DEFAULT_MAX_TOKENS;
  the emulated engine always generates exactly that many (as vLLM with `ignore_eos`).
- prompt tokens: the extension field `modelfleet_prompt_tokens` when given; else the length of a
  token-id prompt (`prompt: [1, 2, 3]`, standard OpenAI); else the prompt or message text
  estimated at CHARS_PER_TOKEN characters per token (at least 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_MAX_TOKENS = 256
CHARS_PER_TOKEN = 4
PROMPT_TOKENS_FIELD = "modelfleet_prompt_tokens"
SSE_DONE = b"data: [DONE]\n\n"

Kind = Literal["completion", "chat"]

# Filler output: one word per token, cycled (the emulator's latency and counters are the point).
_WORDS = (
    "the",
    "model",
    "replies",
    "with",
    "filler",
    "text",
    "while",
    "the",
    "emulator",
    "keeps",
    "time",
    "like",
    "a",
    "real",
    "engine",
    "under",
    "load",
    "and",
    "every",
    "word",
    "stands",
    "for",
    "one",
    "token",
)


class RequestError(ValueError):
    """A request the real engine would refuse with 400 (or `status`)."""

    def __init__(
        self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, param=self.param, code=self.code)


@dataclass(frozen=True)
class CompletionRequest:
    """What the emulator needs from a completion or chat completion request."""

    kind: Kind
    model: str | None
    prompt_tokens: int
    output_tokens: int
    stream: bool
    include_usage: bool = False


def estimate_tokens(text: str) -> int:
    """Tokens in a text at CHARS_PER_TOKEN characters per token, at least 1."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def parse_request(body: Any, kind: Kind) -> CompletionRequest:
    """Validate a decoded JSON body; RequestError names the offending field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("model must be a string", param="model")
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError("the emulator serves n=1 only", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be a boolean", param="stream")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if kind == "chat":
        prompt_tokens = _chat_prompt_tokens(body.get("messages"))
        output = body.get("max_completion_tokens", body.get("max_tokens"))
        output_param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    else:
        prompt_tokens = _completion_prompt_tokens(body.get("prompt"))
        output = body.get("max_tokens")
        output_param = "max_tokens"
    explicit = body.get(PROMPT_TOKENS_FIELD)
    if explicit is not None:
        prompt_tokens = _positive_int(explicit, PROMPT_TOKENS_FIELD)
    output_tokens = DEFAULT_MAX_TOKENS if output is None else _positive_int(output, output_param)
    return CompletionRequest(
        kind=kind,
        model=model,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        stream=stream,
        include_usage=include_usage,
    )


def _positive_int(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{param} must be an integer >= 1, got {value!r}", param=param)
    return value


def _completion_prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        return estimate_tokens(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return len(prompt)
        if len(prompt) == 1:
            return _completion_prompt_tokens(prompt[0])
        raise RequestError("the emulator serves one prompt per request", param="prompt")
    raise RequestError("prompt must be a string or a list of token ids", param="prompt")


def _chat_prompt_tokens(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    text = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("each message needs a role", param="messages")
        content = message.get("content")
        if isinstance(content, str):
            text.append(content)
        elif isinstance(content, list):
            text.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
        elif content is not None:
            raise RequestError("message content must be a string or a list", param="messages")
    return estimate_tokens("".join(text))


def filler(start: int, count: int) -> str:
    """Output tokens start .. start+count-1 as text: one word and a space per token."""
    return "".join(_WORDS[i % len(_WORDS)] + " " for i in range(start, start + count))


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON object."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def sse_data(line: bytes) -> str | None:
    """The payload of one `data:` line of an event stream, or None for other lines."""
    text = line.decode("utf-8", "replace").strip()
    if not text.startswith("data:"):
        return None
    return text[len("data:") :].strip()


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def response(
    request: CompletionRequest, request_id: str, model: str, created: int, text: str
) -> dict[str, Any]:
    """The whole (non-streaming) response."""
    tokens = usage(request.prompt_tokens, request.output_tokens)
    if request.kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "length",
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        obj = "text_completion"
    return {
        "id": request_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": tokens,
    }


def chunk(
    request: CompletionRequest,
    request_id: str,
    model: str,
    created: int,
    text: str,
    *,
    first: bool = False,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One streamed chunk carrying `text` (chat: the first also carries the role)."""
    if request.kind == "chat":
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        if text:
            delta["content"] = text
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = "text_completion"
    return {
        "id": request_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
    }


def usage_chunk(
    request: CompletionRequest, request_id: str, model: str, created: int
) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage` is set: no choices, the usage."""
    return {
        "id": request_id,
        "object": "chat.completion.chunk" if request.kind == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(request.prompt_tokens, request.output_tokens),
    }


def models(model: str, created: int, max_model_len: int | None) -> dict[str, Any]:
    """GET /v1/models: the one served model."""
    card: dict[str, Any] = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "modelfleet-emulator",
        "root": model,
        "parent": None,
    }
    if max_model_len is not None:
        card["max_model_len"] = max_model_len
    return {"object": "list", "data": [card]}


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
