"""The download program the Job runs (render/download.py), run for real around stand-in commands:
progress over HTTP, the completion marker, a warm cache skipping the download, and the reason
of a failure (exit 2 for what no retry fixes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from modelfleet.render.download import DOWNLOAD_SCRIPT, MARKER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(dest: Path, port: int, log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MODELFLEET_DEST": str(dest),
        "MODELFLEET_PROGRESS_PORT": str(port),
        "MODELFLEET_TERMINATION_LOG": str(log),
        "MODELFLEET_SOURCE": "test",  # no source to ask for the size
    }


def run(dest: Path, log: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DOWNLOAD_SCRIPT, *command],
        env=env_for(dest, free_port(), log),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_download_serves_progress_then_marks_the_cache_complete(tmp_path: Path) -> None:
    dest, log, port = tmp_path / "weights", tmp_path / "log", free_port()
    writer = (
        "import os, time, sys; d = os.environ['MODELFLEET_DEST'];"
        "open(os.path.join(d, 'a.safetensors'), 'wb').write(b'x' * 1000);"
        "time.sleep(3)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", DOWNLOAD_SCRIPT, sys.executable, "-c", writer],
        env=env_for(dest, port, log),
    )
    try:
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and seen.get("bytes") != 1000:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=1) as r:
                    seen = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert seen == {"bytes": 1000, "totalBytes": None, "done": False}
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    marker = json.loads((dest / MARKER).read_text())
    assert marker["bytes"] == 1000

    # A warm cache: the command is not run at all (it would fail).
    again = run(dest, log, "false")
    assert again.returncode == 0 and "complete model already" in again.stdout


def test_a_failure_leaves_its_reason_and_no_marker(tmp_path: Path) -> None:
    dest, log = tmp_path / "weights", tmp_path / "log"
    failing = "import sys; sys.stderr.write('ConnectionResetError: reset by peer\\n'); sys.exit(1)"
    result = run(dest, log, sys.executable, "-c", failing)
    assert result.returncode == 1  # retried by the Job: the next pod resumes
    assert "exited with 1: ConnectionResetError: reset by peer" in log.read_text()
    assert not (dest / MARKER).exists()


def test_an_error_no_retry_fixes_exits_2(tmp_path: Path) -> None:
    dest, log = tmp_path / "weights", tmp_path / "log"
    missing = (
        "import sys; sys.stderr.write('huggingface_hub.errors.RepositoryNotFoundError: 404 "
        "Client Error\\n'); sys.exit(1)"
    )
    result = run(dest, log, sys.executable, "-c", missing)
    assert result.returncode == 2
    assert "RepositoryNotFoundError" in log.read_text()
