"""Build etcd, the Kubernetes binaries, kwok, helm and Prometheus from the pinned tools modules,
cached by hash.

A cold Kubernetes build takes tens of minutes on two cores, so binaries are cached outside the
repo under a key that changes whenever a tools module's go.mod or go.sum (or the build tags)
change. Each command builds only what it runs: the cluster binaries for `up`, helm only for the
chart test, Prometheus only for the demo and the dashboard test.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from modelfleet.dev.cluster.paths import cache_dir, tools_dir

PROGRESS_INTERVAL_SECONDS = 15.0
COMPLETE_MARKER = ".complete"
_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


class BuildError(RuntimeError):
    """A `go build` failed; the message carries the tail of go's output."""


@dataclass(frozen=True)
class Component:
    """One `go build` of one tools module into one cache directory."""

    name: str
    module_path: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    tags: tuple[str, ...] = ()


COMPONENTS = (
    Component(
        name="etcd",
        module_path="go.etcd.io/etcd/server/v3",
        packages=("go.etcd.io/etcd/server/v3",),
        binaries=("etcd",),
    ),
    Component(
        name="kubernetes",
        module_path="k8s.io/kubernetes",
        packages=tuple(
            f"k8s.io/kubernetes/cmd/{binary}"
            for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        binaries=("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    ),
    Component(
        name="kwok",
        module_path="sigs.k8s.io/kwok",
        packages=("sigs.k8s.io/kwok/cmd/kwok",),
        binaries=("kwok",),
    ),
)
HELM = Component(
    name="helm",
    module_path="helm.sh/helm/v3",
    packages=("helm.sh/helm/v3/cmd/helm",),
    binaries=("helm",),
)
# Only the Kubernetes service discovery (Prometheus' own build tags): the other discovery plugins
# pull in every cloud SDK and would double the build. No `builtinassets` tag, so no web UI: the
# HTTP API is what the demo and the tests query.
PROMETHEUS = Component(
    name="prometheus",
    module_path="github.com/prometheus/prometheus",
    packages=("github.com/prometheus/prometheus/cmd/prometheus",),
    binaries=("prometheus",),
    tags=("netgo", "remove_all_sd", "enable_kubernetes_sd"),
)


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the local cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path


def module_version(go_mod: str, module_path: str) -> str:
    """The version a go.mod requires for `module_path` (e.g. `v1.36.3`)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module_path)}\s+(v\S+)", go_mod, re.M)
    if match is None:
        raise BuildError(f"go.mod does not require {module_path}")
    return match.group(1)


def version_ldflags(version: str) -> list[str]:
    """`-X` flags so Kubernetes binaries report `version` instead of `v0.0.0-master`."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return [
        f"-X {package}.{key}={value}"
        for package in _VERSION_PACKAGES
        for key, value in values.items()
    ]


def helm_ldflags(version: str, go_mod: str) -> list[str]:
    """`-X` flags as helm's Makefile sets them: its version, and the Kubernetes version that
    `helm lint`/`helm template` assume without a cluster (client-go v0.N -> 1.N)."""
    minor = module_version(go_mod, "k8s.io/client-go").removeprefix("v").split(".")[1]
    return [
        f"-X helm.sh/helm/v3/internal/version.version={version}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        *(
            f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{key}={value}"
            for package in ("chartutil", "lint/rules")
            for key, value in (("Major", "1"), ("Minor", minor))
        ),
    ]


def prometheus_release(module_version: str) -> str:
    """Prometheus' release for its Go module version: v0.316.0 -> 3.16.0 (v0.MNN.P -> M.NN.P)."""
    match = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)(.*)", module_version)
    if match is None:
        raise BuildError(f"unexpected Prometheus module version {module_version!r}")
    major, minor, patch, rest = match.groups()
    return f"{major}.{int(minor)}.{patch}{rest}"


def prometheus_ldflags(version: str) -> list[str]:
    """`-X` flags as Prometheus' .promu.yml sets them, so `prometheus --version` and its
    `prometheus_build_info` series name the release."""
    return [f"-X github.com/prometheus/common/version.Version={prometheus_release(version)}"]


def go_build_command(component: Component, version: str, out: Path, go_mod: str = "") -> list[str]:
    """The single `go build` invocation for a component; `out` is a directory."""
    ldflags = ["-s", "-w"]
    if component.name == "kubernetes":
        ldflags += version_ldflags(version)
    elif component.name == "helm":
        ldflags += helm_ldflags(version, go_mod)
    elif component.name == "prometheus":
        ldflags += prometheus_ldflags(version)
    tags = ["-tags", ",".join(component.tags)] if component.tags else []
    # `go build -o DIR/` names binaries after packages; etcd's package would come out as "v3".
    single = len(component.packages) == 1
    output = str(out / component.binaries[0]) if single else f"{out}{os.sep}"
    return [
        "go",
        "build",
        "-trimpath",
        *tags,
        "-ldflags",
        " ".join(ldflags),
        "-o",
        output,
        *component.packages,
    ]


def module_dir(component: Component) -> Path:
    return tools_dir() / component.name


def cache_key(module: Path, tags: tuple[str, ...] = ()) -> str:
    """Short hash of go.mod + go.sum (+ build tags, if any): a new pin gets a new cache
    directory."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module / name).read_bytes())
    if tags:
        digest.update(",".join(tags).encode())
    return digest.hexdigest()[:12]


def component_dir(component: Component) -> tuple[Path, str]:
    """The cache directory for a component and its pinned version."""
    module = module_dir(component)
    version = module_version((module / "go.mod").read_text(), component.module_path)
    directory = (
        cache_dir() / "bin" / f"{component.name}-{version}-{cache_key(module, component.tags)}"
    )
    return directory, version


def is_built(directory: Path, component: Component) -> bool:
    return (directory / COMPLETE_MARKER).exists() and all(
        (directory / binary).is_file() for binary in component.binaries
    )


def build_component(component: Component) -> Path:
    """Build one component unless its cache directory is complete; returns that directory."""
    directory, version = component_dir(component)
    if is_built(directory, component):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / COMPLETE_MARKER).unlink(missing_ok=True)
    go_mod = (module_dir(component) / "go.mod").read_text()
    command = go_build_command(component, version, directory, go_mod)
    _say(f"building {component.name} {version} -> {directory}")
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command, cwd=module_dir(component), env=env, stdout=output, stderr=subprocess.STDOUT
        )
        while True:
            try:
                returncode = process.wait(timeout=PROGRESS_INTERVAL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                _say(f"  still building {component.name}: {time.monotonic() - started:.0f}s")
        if returncode != 0:
            output.seek(0)
            tail = "\n".join(output.read().splitlines()[-40:])
            raise BuildError(
                f"go build of {component.name} {version} failed (exit {returncode}):\n{tail}"
            )
    (directory / COMPLETE_MARKER).write_text(version + "\n")
    _say(f"built {component.name} in {time.monotonic() - started:.0f}s")
    return directory


def ensure_binaries() -> Binaries:
    """Build (or reuse) the cluster's components and return the binary paths (no helm)."""
    directories = {component.name: build_component(component) for component in COMPONENTS}
    kubernetes = directories["kubernetes"]
    return Binaries(
        etcd=directories["etcd"] / "etcd",
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        kube_scheduler=kubernetes / "kube-scheduler",
        kubectl=kubernetes / "kubectl",
        kwok=directories["kwok"] / "kwok",
    )


def ensure_helm() -> Path:
    """Build (or reuse) helm, which only the chart's test needs; its path."""
    return build_component(HELM) / "helm"


def ensure_prometheus() -> Path:
    """Build (or reuse) Prometheus, which only the demo and the dashboard test run; its path."""
    return build_component(PROMETHEUS) / "prometheus"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
