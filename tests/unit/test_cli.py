"""The `modelfleet` command line: every command has --help, and the operator's entry point loads
nothing that only development uses (issue 10: the image runs `modelfleet run`)."""

from __future__ import annotations

import subprocess
import sys

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
