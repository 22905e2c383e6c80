"""Rapid edits of one ModelDeployment (issue 9, item 5): the change handler, the resync timer and
child events all reconcile it, one at a time, so nothing older is ever applied after something
newer and observedGeneration never goes backwards."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from modelfleet.api.types import GROUP, PLURAL, VERSION
from tests.integration.operator_fixtures import ModelDeployments, wait_until

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "gpu": {"product": "NVIDIA-L4", "count": 1},
}
EDITS = 30  # over several resync periods (2 s in tests) and bursts of pod events


class Recorder:
    """Watches the ModelDeployment and its Deployment; records what each version carried."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        self.generations: list[int] = []  # status.observedGeneration, in event order
        self.templates: list[int] = []  # the --max-num-seqs value of the Deployment's template
        self._watches = [watch.Watch(), watch.Watch()]
        self._stopped = False
        custom: Any = client.CustomObjectsApi(api)
        apps: Any = client.AppsV1Api(api)
        selector = f"metadata.name={name}"
        self._threads = [
            threading.Thread(
                target=self._follow,
                args=(
                    self._watches[0],
                    custom.list_namespaced_custom_object,
                    (GROUP, VERSION, namespace, PLURAL),
                    selector,
                    self._on_model_deployment,
                ),
                daemon=True,
            ),
            threading.Thread(
                target=self._follow,
                args=(
                    self._watches[1],
                    apps.list_namespaced_deployment,
                    (namespace,),
                    selector,
                    self._on_deployment,
                ),
                daemon=True,
            ),
        ]

    def _follow(self, w: Any, lister: Any, args: tuple[Any, ...], selector: str, on: Any) -> None:
        try:
            for event in w.stream(lister, *args, field_selector=selector, timeout_seconds=120):
                on(event["object"])
        except Exception:
            if not self._stopped:  # after the test, the stream may die with the cluster
                raise

    def _on_model_deployment(self, obj: dict[str, Any]) -> None:
        seen = (obj.get("status") or {}).get("observedGeneration")
        if seen is not None and (not self.generations or self.generations[-1] != seen):
            self.generations.append(int(seen))

    def _on_deployment(self, obj: Any) -> None:
        args = obj.spec.template.spec.containers[0].args or []
        value = next((int(a.split("=")[1]) for a in args if a.startswith("--max-num-seqs=")), 0)
        if not self.templates or self.templates[-1] != value:
            self.templates.append(value)

    def __enter__(self) -> Recorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped = True
        for w in self._watches:
            w.stop()


def test_rapid_edits_never_apply_an_older_spec_after_a_newer_one(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    mds.create(namespace, "edited", SPEC)
    wait_until(
        lambda: mds.condition(namespace, "edited", "Ready").get("status") == "True",
        60,
        "Ready=True",
    )
    with Recorder(api, namespace, "edited") as seen:
        for value in range(1, EDITS + 1):
            mds.patch_spec(namespace, "edited", {"extraArgs": [f"--max-num-seqs={value}"]})
            time.sleep(0.2)  # a user or a GitOps loop editing, not one burst kopf batches
        final = mds.get(namespace, "edited")["metadata"]["generation"]
        wait_until(
            lambda: seen.generations and seen.generations[-1] == final,
            60,
            f"observedGeneration {final}",
        )
        wait_until(lambda: seen.templates and seen.templates[-1] == EDITS, 30, "the last template")
    assert seen.generations == sorted(seen.generations), seen.generations
    assert seen.templates == sorted(seen.templates), seen.templates
