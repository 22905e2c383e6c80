"""Hostile files for `modelfleet plan` and `modelfleet simulate`: one clear line, exit 2, fast.

Each input runs in-process under a deadline (SIGALRM) and an allocation budget (tracemalloc),
so a YAML bomb or an endless file fails the test instead of hanging it; one subprocess per
command checks what a user sees, with no traceback.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelfleet.cli import yaml_files
from modelfleet.cli.plan import add_plan_command
from modelfleet.dev.replay.command import add_simulate_command

SECONDS = 10
PEAK_BYTES = 64 * 2**20
TRACE = "TIMESTAMP,ContextTokens,GeneratedTokens\n0,500,20\n5,800,10\n"
DEPLOYMENT = (
    "kind: ModelDeployment\nmetadata: {name: sim}\n"
    "spec: {model: meta-llama/Llama-3.1-8B-Instruct, maxReplicas: 4}\n"
)


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\nkind: ModelDeployment\nspec: {model: m, extraArgs: *a9}\n"


def alias_chain(length: int) -> str:
    """Each anchor wraps the previous one: shallow text, deep once expanded."""
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, length)]
    return "\n".join(lines) + "\n"


def random_bytes(size: int) -> bytes:
    return random.Random(9).randbytes(size)


# (id, file content or a special path, words in the one error line)
HOSTILE: list[tuple[str, str | bytes | Path, str]] = [
    ("billion-laughs", billion_laughs(), "aliases expand to more than 10000 nodes"),
    ("recursive-alias", "kind: ModelDeployment\nspec: &s {model: m, x: *s}\n", "refers to itself"),
    ("alias-chain", alias_chain(150), "aliases nest deeper than 100"),
    ("deep-flow", "spec: " + "[" * 150 + "]" * 150 + "\n", "nested deeper than 100"),
    ("very-deep-flow", "spec: " + "[" * 100_000 + "\n", "nest"),
    ("deep-block", "spec:\n  " + "- " * 150 + "x\n", "nested deeper than 100"),
    ("binary", random_bytes(65536), "not a text file"),
    ("nul-byte", "kind: ModelDeployment\nspec: {model: \x00}\n", "#x0000"),
    ("control-char", "\x1bkind: x\n", "#x001b"),
    ("syntax", "kind: ModelDeployment\nspec: [unclosed\n", ":3:1: not valid YAML"),
    ("huge-integer", "kind: ModelDeployment\nspec: {replicas: " + "9" * 5000 + "}\n", "digits"),
    ("impossible-date", "kind: ModelDeployment\nspec: {model: m}\nat: 2023-13-01\n", "month"),
    ("python-tag", "kind: ModelDeployment\nspec: !!python/object/apply:os.system [id]\n", "tag"),
    ("unhashable-key", "kind: ModelDeployment\n? [a]\n: b\n", "unhashable"),
    ("scalar-document", "42\n", "no ModelDeployment found"),
    ("list-document", "- kind: ModelDeployment\n", "no ModelDeployment found"),
    ("empty", "", "no ModelDeployment found"),
    ("only-comments", "# nothing\n---\n---\n", "no ModelDeployment found"),
    ("spec-not-mapping", "kind: ModelDeployment\nspec: [1, 2]\n", "spec"),
    (
        "bad-name",
        "kind: ModelDeployment\nmetadata: {name: llama-3.1-8b}\nspec: {model: m}\n",
        "metadata.name: metadata.name must be a DNS-1035 label",
    ),
    (
        "name-not-text",
        "kind: ModelDeployment\nmetadata: {name: [a]}\nspec: {model: m}\n",
        "metadata.name",
    ),
    ("huge-sparse-file", Path("SPARSE"), "larger than 16 MiB"),
    ("endless-device", Path("/dev/zero"), "larger than 16 MiB"),
    ("directory", Path("DIR"), "directory"),
    ("missing", Path("MISSING"), "No such file"),
]


@contextmanager
def bounded(seconds: int = SECONDS, peak: int = PEAK_BYTES) -> Iterator[None]:
    """Fail (not hang) past `seconds`; fail if Python allocations peaked above `peak`."""

    def expire(*_: Any) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    tracemalloc.start()
    try:
        yield
        _, top = tracemalloc.get_traced_memory()
        assert top < peak, f"allocations peaked at {top / 2**20:.0f} MiB"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def materialise(tmp_path: Path, content: str | bytes | Path) -> Path:
    if isinstance(content, Path):
        if content == Path("SPARSE"):
            path = tmp_path / "huge.yaml"
            with path.open("wb") as handle:
                handle.truncate(100 * 2**30)  # 100 GiB that take no disk
            return path
        if content == Path("DIR"):
            return tmp_path
        if content == Path("MISSING"):
            return tmp_path / "missing.yaml"
        return content
    path = tmp_path / "input.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def run_command(add: Callable[[Any], None], argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add(parser.add_subparsers())
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with bounded():
        code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_line(prog: str, result: tuple[int, str, str], words: str) -> None:
    code, out, err = result
    assert (code, out) == (2, ""), err
    assert err.startswith(f"{prog}: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err) < 400, err
    assert words in err, err


@pytest.mark.parametrize(
    ("content", "words"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_plan_manifest(tmp_path: Path, content: str | bytes | Path, words: str) -> None:
    path = materialise(tmp_path, content)
    result = run_command(add_plan_command, ["plan", "-f", str(path), "--all-gpus"])
    assert_one_clear_line("modelfleet plan", result, words)


@pytest.mark.parametrize(
    ("content", "words"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_simulate_deployment(tmp_path: Path, content: str | bytes | Path, words: str) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    path = materialise(tmp_path, content)
    argv = ["simulate", "--trace", str(trace), "-f", str(path)]
    assert_one_clear_line("modelfleet simulate", run_command(add_simulate_command, argv), words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("billion-laughs", "aliases expand"),
        ("scalar-document", "expected a NodeList"),
        ("binary", "not a text file"),
        ("endless-device", "larger than 16 MiB"),
    ],
)
def test_plan_inventory(tmp_path: Path, content: str, words: str) -> None:
    manifest = tmp_path / "md.yaml"
    manifest.write_text(DEPLOYMENT)
    hostile = next(h[1] for h in HOSTILE if h[0] == content)
    path = materialise(tmp_path, hostile)
    argv = ["plan", "-f", str(manifest), "--inventory", str(path)]
    assert_one_clear_line("modelfleet plan", run_command(add_plan_command, argv), words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (TRACE.replace("500", "5" * 200_000), ":2: longer than 65536 characters"),
        (TRACE + ",".join(["1"] * 20_000) + "\n", ":4: expected 3 fields, got 20000: 1,1,1"),
        (TRACE.replace("500", "50\x000"), "ContextTokens '50\\x000'"),
        (TRACE + '1,"unterminated\n', ":4: expected 3 fields, got 2: 1,unterminated\\n"),
        (random_bytes(65536), "not a text file"),
        (Path("/dev/zero"), "/dev/zero:1: longer than 65536 characters"),
        ("", "no requests"),
        ("TIMESTAMP\n", "missing ContextTokens, GeneratedTokens"),
    ],
    ids=["long-line", "wide-row", "nul", "open-quote", "binary", "endless", "empty", "header"],
)
def test_simulate_trace(tmp_path: Path, content: str | bytes | Path, words: str) -> None:
    deployment = tmp_path / "md.yaml"
    deployment.write_text(DEPLOYMENT)
    trace = content if isinstance(content, Path) else tmp_path / "trace.csv"
    if isinstance(content, bytes):
        trace.write_bytes(content)
    elif isinstance(content, str):
        trace.write_text(content)
    argv = ["simulate", "--trace", str(trace), "-f", str(deployment)]
    assert_one_clear_line("modelfleet simulate", run_command(add_simulate_command, argv), words)


def test_node_count_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 16 MiB of one-character items would be ~8M nodes; the cap is checked while streaming.
    monkeypatch.setattr(yaml_files, "MAX_NODES", 1000)
    path = tmp_path / "wide.yaml"
    path.write_text("spec: [" + ",".join("a" * 2000) + "]\n")
    result = run_command(add_plan_command, ["plan", "-f", str(path), "--all-gpus"])
    assert_one_clear_line("modelfleet plan", result, "refused: more than 1000 nodes")


def test_real_yaml_features_still_load(tmp_path: Path) -> None:
    """The guards leave anchors, merge keys and multi-document files alone."""
    path = tmp_path / "md.yaml"
    path.write_text(
        "\ufeffdefaults: &defaults {model: meta-llama/Llama-3.1-8B-Instruct}\n---\n"
        "kind: ModelDeployment\nmetadata: {name: ok}\n"
        "spec: {<<: {model: meta-llama/Llama-3.1-8B-Instruct}, maxContextLength: 8192}\n"
    )
    assert yaml_files.read_documents(path)[1]["spec"]["maxContextLength"] == 8192
    code, out, err = run_command(add_plan_command, ["plan", "-f", str(path), "--all-gpus"])
    assert (code, err) == (0, "") and "L4" in out


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 * 2**30, 1 * 2**30))


@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_a_user_sees_one_line_and_no_traceback(tmp_path: Path, command: str) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    argv = (
        ["plan", "-f", str(bomb), "--all-gpus"]
        if command == "plan"
        else ["simulate", "--trace", str(trace), "-f", str(bomb)]
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"modelfleet {command}: {bomb}:" in result.stderr
