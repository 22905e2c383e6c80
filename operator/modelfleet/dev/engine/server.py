"""One emulated engine pod: an aiohttp server on the pod's IP and port 8000.

Routes: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions (JSON or,
with `stream: true`, server-sent events ending in `data: [DONE]`), GET /metrics.

Speed comes from `perf.engine.profile_for_placement(model, GPU product, GPU count, quantization,
max context)`. A pod whose model or GPU the catalog does not know is still served: first the
FALLBACK_MODEL on the pod's own GPUs, else the FALLBACK_MODEL on one FALLBACK_GPU, with a
warning in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from modelfleet.dev.engine import openai
from modelfleet.dev.engine.driver import EngineDriver, Tracked
from modelfleet.dev.engine.metrics import CONTENT_TYPE, PodMetrics
from modelfleet.dev.engine.pods import PodFacts
from modelfleet.perf.engine import EngineProfile, ReplicaEngine, profile_for_placement
from modelfleet.render.engines import ENGINE_PORT

log = logging.getLogger(__name__)

FALLBACK_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
FALLBACK_GPU = "NVIDIA-L4"
STREAM_INTERVAL_SECONDS = 0.05  # how often a stream checks for new tokens (chunks are batched)
SHUTDOWN_GRACE_SECONDS = 5.0  # in-flight requests get this long when a pod goes away


class PodGone(ConnectionError):
    """The emulated pod stopped while a request was in flight."""


def engine_profile(facts: PodFacts) -> tuple[EngineProfile, str]:
    """The pod's performance profile and a note saying what it is (or what it fell back to)."""
    tries = [
        (facts.model, facts.gpu_product, facts.gpus, facts.quantization, facts.max_context),
        (FALLBACK_MODEL, facts.gpu_product, facts.gpus, None, None),
        (FALLBACK_MODEL, FALLBACK_GPU, 1, None, None),
    ]
    errors = []
    for model, gpu, gpus, quantization, context in tries:
        if gpu is None:
            errors.append("no GPU product")
            continue
        try:
            found = profile_for_placement(
                model, gpu, gpus, quantization=quantization, max_context=context
            )
        except ValueError as error:
            errors.append(str(error))
            continue
        note = f"{model} on {gpus}x {gpu}"
        if errors:
            note += f" (fallback: {'; '.join(errors)})"
        return found, note
    raise ValueError(f"no profile for {facts.key}: {'; '.join(errors)}")


class PodServer:
    """Serves one pod until `stop()`."""

    def __init__(self, facts: PodFacts, profile: EngineProfile, *, port: int = ENGINE_PORT):
        self.facts = facts
        self.port = port
        self.created = int(time.time())
        self.metrics = PodMetrics(facts.engine, facts.model, self._load)
        self.driver = EngineDriver(ReplicaEngine(profile), on_first_token=self.metrics.observe_ttft)
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> Any:
        return self.driver.load()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/metrics", self.metrics_text)
        return app

    async def start(self) -> None:
        """Bind podIP:port (raises OSError when the address is taken) and start the engine."""
        # handler_cancellation: a client that disconnects cancels its handler, which aborts the
        # request in the engine (vLLM does the same); otherwise abandoned requests keep the
        # emulated GPU busy and the autoscaler sees load nobody is waiting for.
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.facts.ip, self.port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._task = asyncio.create_task(self.driver.run(), name=f"engine {self.facts.key}")
        self._task.add_done_callback(self._engine_stopped)

    def _engine_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("engine model of %s failed", self.facts.key, exc_info=task.exception())
            self.driver.fail_all(PodGone(f"the engine model of {self.facts.key} failed"))

    async def stop(self) -> None:
        """Stop listening, give in-flight requests a short grace, then fail the rest."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.driver.fail_all(PodGone(f"pod {self.facts.key} stopped"))

    def _engine_failed(self) -> bool:
        return self._task is not None and self._task.done()

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self._engine_failed() else 200)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            openai.models(self.facts.model, self.created, self.facts.max_context)
        )

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completion")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def _serve(self, request: web.Request, kind: openai.Kind) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(openai.RequestError("the request body is not valid JSON"))
        try:
            parsed = self._validate(openai.parse_request(body, kind))
        except openai.RequestError as error:
            return _error(error)
        if self._engine_failed():
            return _error(openai.RequestError("the engine model failed", status=503))
        tracked = self.driver.submit(parsed.prompt_tokens, parsed.output_tokens)
        try:
            if parsed.stream:
                return await self._stream(request, parsed, tracked)
            await tracked.finished
        except (asyncio.CancelledError, ConnectionResetError):
            self.driver.abort(tracked)
            raise
        text = openai.filler(0, parsed.output_tokens)
        return web.json_response(
            openai.response(parsed, tracked.id, self.facts.model, int(time.time()), text)
        )

    def _validate(self, parsed: openai.CompletionRequest) -> openai.CompletionRequest:
        if parsed.model is not None and parsed.model != self.facts.model:
            raise openai.RequestError(
                f"The model `{parsed.model}` does not exist.",
                param="model",
                status=404,
                code="model_not_found",
            )
        limit = self.facts.max_context
        total = parsed.prompt_tokens + parsed.output_tokens
        if limit is not None and total > limit:
            raise openai.RequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{total} tokens ({parsed.prompt_tokens} in the messages, "
                f"{parsed.output_tokens} in the completion).",
                param="max_tokens",
            )
        return parsed

    async def _stream(
        self, request: web.Request, parsed: openai.CompletionRequest, tracked: Tracked
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        model, created = self.facts.model, int(time.time())
        await tracked.first_token
        sent = 0
        while True:
            done = tracked.finished.done()
            if done:
                tracked.finished.result()  # raises PodGone when the pod stopped mid-stream
            total = max(self.driver.generated(tracked), 1)
            if total > sent or done:
                chunk = openai.chunk(
                    parsed,
                    tracked.id,
                    model,
                    created,
                    openai.filler(sent, total - sent),
                    first=sent == 0,
                    finish_reason="length" if done else None,
                )
                await response.write(openai.sse(chunk))
                sent = total
            if done:
                break
            await asyncio.wait({tracked.finished}, timeout=STREAM_INTERVAL_SECONDS)
        if parsed.include_usage:
            await response.write(openai.sse(openai.usage_chunk(parsed, tracked.id, model, created)))
        await response.write(openai.SSE_DONE)
        await response.write_eof()
        return response


def _error(error: openai.RequestError) -> web.Response:
    return web.json_response(error.body(), status=error.status)
