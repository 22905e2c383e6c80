"""The `modelfleet` command line: every command has --help, and the operator's entry point loads
nothing that only development uses (issue 10: the image runs `modelfleet run`)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from modelfleet.cli.main import COMMANDS

PROBE = """
import sys
from modelfleet.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.startswith("modelfleet.dev") or m == "hypothesis"))
"""


def loaded_dev_modules(argv: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_operator_entry_point_loads_no_dev_code() -> None:
    assert loaded_dev_modules(["run", "--help"]) == "[]"
    # The check itself works: a dev command does load its package.
    assert "modelfleet.dev.cluster" in loaded_dev_modules(["cluster", "--help"])


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command: str | None) -> None:
    argv = [sys.executable, "-m", "modelfleet.cli", *([command] if command else []), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: modelfleet" in done.stdout


@pytest.mark.parametrize(
    ("flag", "env"), [(["--metrics-port", "http"], {}), ([], {"MODELFLEET_METRICS_PORT": "70000"})]
)
def test_a_bad_metrics_port_is_one_clear_error(flag: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "run", *flag],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 2
    assert "--metrics-port: want a TCP port (1-65535)" in done.stderr
    assert "Traceback" not in done.stderr


UNREACHABLE = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize(
    ("kubeconfig", "words"),
    [(None, "no cluster to run against"), (UNREACHABLE, "cannot reach the API server at")],
)
def test_run_without_a_reachable_cluster_is_one_clear_error(
    tmp_path: Any, kubeconfig: str | None, words: str
) -> None:
    path = tmp_path / "kubeconfig"
    if kubeconfig is not None:
        path.write_text(kubeconfig)
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "run", "--metrics-port", "1"],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "KUBECONFIG": str(path)},
    )
    assert done.returncode == 1
    assert words in done.stderr
    assert "Traceback" not in done.stderr
