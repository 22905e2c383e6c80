"""Start detached processes, recognise them later by PID, and stop exactly those.

Each process gets its own session (so it outlives the CLI that started it and ignores the
terminal's Ctrl-C) and writes stdout and stderr to one log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` in a new session with output appended to `log`; returns its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return os.posix_spawn(
        argv[0],
        argv,
        os.environ if env is None else env,
        setsid=True,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
    )


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone or a zombie.

    PID plus start time identifies a process even after its PID is reused.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, started = fields[0], fields[19]
    return None if state == "Z" else int(started)


def is_running(pid: int, started: int) -> bool:
    return start_time(pid) == started


def stop(pid: int, started: int, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after the grace period; a no-op if the PID is no longer ours."""
    for sig, wait_seconds in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        if not is_running(pid, started):
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and is_running(pid, started):
            time.sleep(0.1)


def log_tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that it is missing."""
    if not log.exists():
        return f"(no log at {log})"
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - 200 * lines))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
