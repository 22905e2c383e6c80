"""The operator's own HTTP endpoints: /healthz for the liveness probe and /metrics.

Served from the first second of the process, before this instance leads: a standby is healthy
while its election loop runs, so Kubernetes never restarts it for waiting its turn.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from modelfleet.handlers.metrics import REGISTRY
from modelfleet.kube.lease import LeaderElector


def app(elector: LeaderElector, registry: CollectorRegistry = REGISTRY) -> web.Application:
    leader = Gauge(
        "modelfleet_leader",
        "1 while this instance holds the leader lease, else 0.",
        registry=registry,
    )
    leader.set_function(lambda: 1.0 if elector.held else 0.0)

    async def healthz(_: web.Request) -> web.Response:
        body = {"electionLoopAlive": elector.alive, "leader": elector.held}
        return web.json_response(body, status=200 if elector.alive else 500)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    application = web.Application()
    application.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics)])
    return application


async def serve(elector: LeaderElector, address: str, port: int) -> web.AppRunner:
    """Start serving; the caller cleans the runner up on the way out."""
    runner = web.AppRunner(app(elector), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
