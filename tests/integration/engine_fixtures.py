"""Run the engine emulator against the test cluster, and find the engine pods it serves.

The `emulator` fixture (conftest.py) runs `modelfleet emulate --kubeconfig ...` for the whole
session: from then on, every Ready modelfleet engine pod answers on http://<podIP>:8000 within
about a second of becoming Ready. Use `wait_for_engines` to get their URLs, and
`modelfleet.dev.engine.load` (or `modelfleet load`) to put load on them.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from modelfleet.render.children import OWNER_LABEL
from modelfleet.render.engines import ENGINE_PORT
from tests.integration.operator_fixtures import start_modelfleet, terminate, wait_until


@contextmanager
def run_emulator(kubeconfig: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`modelfleet emulate` as a subprocess, logging to `log_path`; stopped (SIGTERM) at exit."""
    process = start_modelfleet(["emulate", "--kubeconfig", str(kubeconfig)], log_path)
    try:
        yield process
    finally:
        terminate(process)


def log_tail(log_path: Path, lines: int = 80) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def ready_pod_urls(api: Any, namespace: str, deployment: str) -> list[str]:
    """http://<podIP>:8000 of the deployment's Running, Ready, not terminating pods."""
    core: Any = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=f"{OWNER_LABEL}={deployment}").items
    return sorted(
        f"http://{pod.status.pod_ip}:{ENGINE_PORT}"
        for pod in pods
        if pod.status.phase == "Running"
        and pod.status.pod_ip
        and not pod.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


def answers(url: str) -> bool:
    """True when GET <url>/health is 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for_engines(
    api: Any, namespace: str, deployment: str, replicas: int, timeout: float = 90
) -> list[str]:
    """Wait until exactly `replicas` pods are Ready and the emulator answers on each; their URLs."""

    def serving() -> list[str]:
        urls = ready_pod_urls(api, namespace, deployment)
        return urls if len(urls) == replicas and all(answers(u) for u in urls) else []

    return wait_until(serving, timeout, f"{replicas} emulated engine(s) of {deployment} answering")
