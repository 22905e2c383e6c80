"""The scale benchmark's record: figures with their targets, progress lines, the report.

A `Run` collects `Figure`s (value, target, whether it was met) and evidence as the phases go;
`report` prints them as a table with the requests that dominate, `document` as JSON.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelfleet.cli.tables import table

# Only a run at least this big decides PASS/FAIL (the sizes).
FULL_SIZE = {"deployments": 1000, "nodes": 200, "steady_seconds": 300, "autoscaled": 100}
PROGRESS_SECONDS = 5.0
ERROR_LINE = re.compile(r"Traceback|\bERROR\b|(?i:\bfailed\b)")
NOT_AN_ERROR = re.compile(r"\b0 failed\b")  # kopf: "Updating is processed: 1 succeeded; 0 failed."


def error_lines(text: str) -> list[str]:
    """Lines of an operator log that report an error: tracebacks, ERROR, 'failed'."""
    return [line for line in text.splitlines() if ERROR_LINE.search(NOT_AN_ERROR.sub("", line))]


@dataclass
class Figure:
    name: str
    value: float | int | str
    target: str = "-"
    met: bool | None = None  # None: reported, no target
    unit: str = ""


@dataclass
class Run:
    args: argparse.Namespace
    work: Path
    started: float = field(default_factory=time.monotonic)
    figures: list[Figure] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    last_progress: float = 0.0

    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        """`message` at most every PROGRESS_SECONDS."""
        if time.monotonic() - self.last_progress >= PROGRESS_SECONDS:
            self.last_progress = time.monotonic()
            self.say(message)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def mb(mib: float) -> float:
    """MiB (what /proc counts in kB = KiB) to MB, the unit of the issue's target."""
    return mib * 1024 * 1024 / 1e6


# ---------------------------------------------------------------- report


def verdict(figure: Figure, full: bool) -> str:
    if figure.met is None:
        return ""
    if full:
        return "PASS" if figure.met else "FAIL"
    return "met" if figure.met else "missed"


def show(value: float | int | str) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:g}"
    return str(value)


def report(run: Run, full: bool, full_size: dict[str, int]) -> str:
    rows = [(f.name, show(f.value), f.target, verdict(f, full)) for f in run.figures]
    lines = [
        "",
        "Scale benchmark: "
        + (
            "full size, PASS/FAIL decided against the issue's targets"
            if full
            else "NOT the full size: indicative only, targets not decided (full size: "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in full_size.items())
            + ")"
        ),
        table(("figure", "value", "target", "verdict"), rows),
    ]
    for phase in ("create", "steady"):
        evidence = run.evidence.get(phase)
        if not evidence:
            continue
        lines.append(
            f"Operator requests in the {phase} phase ({evidence['requests']} in "
            f"{evidence['seconds']:g} s), most frequent first:"
        )
        lines.append(
            table(
                ("verb", "resource", "count", "per second"),
                [
                    (c["verb"], c["resource"], str(c["count"]), f"{c['perSecond']:g}")
                    for c in evidence["byCall"][:12]
                ],
            )
        )
        if evidence["childWriteExamples"]:
            lines.append("Child writes, e.g.: " + "; ".join(evidence["childWriteExamples"][:5]))
    for phase, load in (run.evidence.get("operatorLoad") or {}).items():
        lines.append(
            f"Operator while {phase}: {load['reconciles']:.0f} reconciles, mean "
            f"{load['meanReconcileSeconds']:g} s each; periodic work in flight "
            f"{load['periodicRunningMean']:g} on average, waiting {load['periodicWaitingMean']:g} "
            f"on average, {load['periodicWaitingMax']:g} at most"
        )
    decisions = run.evidence.get("decisions")
    if decisions:
        lines.append(
            "Autoscaler decisions: time between two decisions of one deployment p50 "
            f"{decisions['gapSecondsP50']:g} s, p95 {decisions['gapSecondsP95']:g} s, max "
            f"{decisions['gapSecondsMax']:g} s; each deployment's worst lag p50 "
            f"{decisions['worstLagPerDeploymentP50']:g} s, p95 "
            f"{decisions['worstLagPerDeploymentP95']:g} s"
        )
    if run.evidence.get("churnErrors"):
        lines.append("Operator log lines counted as errors during churn (first 10):")
        lines.extend("  " + line[:300] for line in run.evidence["churnErrors"][:10])
    return "\n".join(lines)


def source() -> dict[str, Any]:
    """Where the operator's code came from: its path, and the git commit when it is a checkout."""
    import modelfleet

    where = Path(modelfleet.__file__).resolve().parent
    found: dict[str, Any] = {"path": str(where)}
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found |= {"commit": commit, "uncommittedChanges": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        pass
    return found


def machine() -> dict[str, Any]:
    memory = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "memoryMiB": memory,
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def describe_source(origin: dict[str, Any]) -> str:
    if "commit" not in origin:
        return str(origin["path"])
    changes = ", with uncommitted changes" if origin["uncommittedChanges"] else ""
    return f"{origin['path']} (commit {origin['commit'][:12]}{changes})"


def document(run: Run, full: bool, origin: dict[str, Any], failure: str | None) -> dict[str, Any]:
    """The summary as JSON: when, where, what was run, every figure, the evidence."""
    args = run.args
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "operatorSource": origin,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "fullSize": full,
        "failure": failure,
        "figures": [
            {
                "figure": f.name,
                "value": None if isinstance(f.value, float) and math.isinf(f.value) else f.value,
                "unit": f.unit,
                "target": f.target,
                "verdict": verdict(f, full) or None,
            }
            for f in run.figures
        ],
        "evidence": run.evidence,
        "workDir": str(run.work),
    }
