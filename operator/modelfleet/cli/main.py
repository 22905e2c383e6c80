"""The `modelfleet` command line: a table of subcommands, each in its own module.

Only the module of the command being run is imported, by name: `modelfleet run` (the image's
entry point) loads the operator and nothing of the local cluster, the emulator or the trace
simulator (tests/unit/test_cli.py checks it; import-linter forbids static imports of them).
The operator image leaves `modelfleet.dev` out altogether (Dockerfile): there the dev commands are
missing from `--help` and asking for one says so in one line (tests/unit/test_dockerfile.py).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

# command -> (module, function that adds its parser); the dev-only ones live in modelfleet.dev.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("modelfleet.cli.run", "add_run_command"),
    "plan": ("modelfleet.cli.plan", "add_plan_command"),
    "cost": ("modelfleet.cli.cost", "add_cost_command"),
    "crds": ("modelfleet.cli.crds", "add_crds_command"),
    "api-docs": ("modelfleet.cli.api_docs", "add_api_docs_command"),
    "cluster": ("modelfleet.dev.cluster.cli", "add_cluster_commands"),
    "emulate": ("modelfleet.dev.engine.cli", "add_engine_commands"),
    "load": ("modelfleet.dev.engine.cli", "add_engine_commands"),
    "simulate": ("modelfleet.dev.replay.command", "add_simulate_command"),
}


DEV_PACKAGE = "modelfleet.dev"


def _absent(module: str, error: ModuleNotFoundError) -> bool:
    """True when `module` is dev-only code left out of this install (the operator image), not
    a dependency missing inside code that is there."""
    return module.startswith(DEV_PACKAGE) and (error.name or "").startswith(DEV_PACKAGE)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with just `only` (and what shares its module)."""
    parser = argparse.ArgumentParser(
        prog="modelfleet",
        description="Serve open LLMs on your own GPUs at the lowest cost.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = [COMMANDS[only]] if only in COMMANDS else list(COMMANDS.values())
    for module, function in dict.fromkeys(wanted):
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if not _absent(module, error):
                raise
            continue
        getattr(loaded, function)(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if (
        command in COMMANDS
        and COMMANDS[command][0].startswith(DEV_PACKAGE)
        and importlib.util.find_spec(DEV_PACKAGE) is None
    ):
        print(
            f"modelfleet: `{command}` is a development command, not part of this install "
            "(the operator image leaves modelfleet.dev out); run it from a source checkout",
            file=sys.stderr,
        )
        return 2
    args = build_parser(command).parse_args(argv)
    result: int = args.func(args)
    return result
