"""`make demo`: a local control plane, the CRD, the operator and the samples, left running.

Run as `python -m modelfleet.sim.demo` (or `--down` to stop the operator and the cluster).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from modelfleet.sim.cluster import control_plane, ensure_binaries
from modelfleet.sim.cluster.paths import DEFAULT_CLUSTER_NAME, state_dir
from modelfleet.sim.cluster.processes import is_running, spawn, start_time, stop

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"
CRDS = ROOT / "crds"
READY_TIMEOUT_SECONDS = 180


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _operator_pid_file(name: str) -> Path:
    return state_dir(name) / "operator.pid"


def _start_operator(name: str, kubeconfig: str) -> Path:
    """Start `modelfleet run` detached, so it keeps running after the demo command ends."""
    log = state_dir(name) / "logs" / "operator.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file = _operator_pid_file(name)
    if pid_file.exists():
        pid, started = (int(x) for x in pid_file.read_text().split())
        if is_running(pid, started):
            _say(f"operator already running (pid {pid})")
            return log
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1"}
    pid = spawn([sys.executable, "-m", "modelfleet.cli", "run"], log, env)
    pid_file.write_text(f"{pid} {start_time(pid) or 0}")
    _say(f"operator started (pid {pid}), log: {log}")
    return log


def _stop_operator(name: str) -> None:
    pid_file = _operator_pid_file(name)
    if pid_file.exists():
        pid, started = (int(x) for x in pid_file.read_text().split())
        stop(pid, started)
        pid_file.unlink()
        _say(f"operator (pid {pid}) stopped")


def _kubectl(kubectl: Path, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        check=True,
        text=True,
        capture_output=True,
    )


def _wait_ready(kubectl: Path, kubeconfig: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    started = time.monotonic()
    while True:
        columns = (
            "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status"
        )
        out = _kubectl(kubectl, kubeconfig, "get", "md", "-A", "--no-headers", "-o", columns)
        rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
        ready = [r[0] for r in rows if len(r) > 1 and r[1] == "True"]
        _say(f"{len(ready)}/{len(rows)} ModelDeployments Ready ({time.monotonic() - started:.0f}s)")
        if rows and len(ready) == len(rows):
            return
        if time.monotonic() > deadline:
            print(log.read_text()[-4000:], file=sys.stderr)
            raise SystemExit(f"not all ModelDeployments became Ready in {READY_TIMEOUT_SECONDS}s")
        time.sleep(3)


def demo(name: str) -> int:
    binaries = ensure_binaries()
    _say("starting the local control plane (etcd, apiserver, controller-manager, scheduler, kwok)")
    state = control_plane.up(name=name)
    kubeconfig = state.kubeconfig
    _say("installing the ModelDeployment CRD")
    _kubectl(binaries.kubectl, kubeconfig, "apply", "-f", str(CRDS))
    _kubectl(
        binaries.kubectl,
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "crd/modeldeployments.modelfleet.dev",
        "--timeout=60s",
    )
    log = _start_operator(name, kubeconfig)
    _say(f"applying the samples in {SAMPLES.relative_to(ROOT)}/")
    print(_kubectl(binaries.kubectl, kubeconfig, "apply", "-f", str(SAMPLES)).stdout, end="")
    _wait_ready(binaries.kubectl, kubeconfig, log)
    print()
    print(_kubectl(binaries.kubectl, kubeconfig, "get", "md", "-o", "wide").stdout)
    print(_kubectl(binaries.kubectl, kubeconfig, "get", "pods", "-o", "wide").stdout)
    print(
        f"The cluster and the operator keep running. Try:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  alias kubectl={binaries.kubectl}\n"
        f"  kubectl get md\n"
        f"  kubectl describe md qwen2-5-72b-instruct\n"
        f"Stop everything with: make demo-down"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelfleet.sim.demo",
        description="Start the local cluster, the operator and the samples; leave them running.",
    )
    parser.add_argument("--name", default=DEFAULT_CLUSTER_NAME, help="local cluster name")
    parser.add_argument("--down", action="store_true", help="stop the operator and the cluster")
    args = parser.parse_args()
    if args.down:
        _stop_operator(args.name)
        control_plane.down(args.name)
        _say(f"cluster {args.name!r} stopped")
        return 0
    return demo(args.name)


if __name__ == "__main__":
    sys.exit(main())
