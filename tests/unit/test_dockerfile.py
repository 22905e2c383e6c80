"""The operator image's Dockerfile, read as text (no container runtime here to build it), and the
package laid out as its build leaves it: without modelfleet.dev, `modelfleet run` still starts.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VALUES = ROOT / "charts" / "modelfleet" / "values.yaml"
# A full version (3.11.14-slim-bookworm) or a digest; never a floating tag (3.11, slim, latest).
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$|@sha256:[0-9a-f]{64}$")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuations joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The build stages, each starting at its FROM."""
    result: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(step)
    return result


def base_images(steps: list[tuple[str, str]]) -> list[str]:
    """Each stage's base image, with ARG defaults (before the first FROM) expanded."""
    args = {}
    for keyword, rest in steps:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
    images = []
    for keyword, rest in steps:
        if keyword == "FROM":
            image = rest.split()[0]
            for name, value in args.items():
                image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
            images.append(image)
    return images


STEPS = instructions(DOCKERFILE.read_text())


def test_every_base_image_is_pinned_by_version_or_digest() -> None:
    images = base_images(STEPS)
    assert len(images) == 2, images  # build and runtime
    for image in images:
        assert "$" not in image, f"unexpanded build arg in FROM {image}"
        assert PINNED.search(image), f"{image}: pin a full version (x.y.z) or a sha256 digest"
    # The runtime stage runs on the same Python as the build stage installed for.
    assert images[0] == images[1]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("python:3.11-slim", False),
        ("python:latest", False),
        ("python", False),
        ("python:3.11.14-slim-bookworm", True),
        ("python@sha256:" + "a" * 64, True),
        ("python:3.11.14-slim@sha256:" + "0" * 64, True),
    ],
)
def test_the_pin_rule_itself(image: str, pinned: bool) -> None:
    assert bool(PINNED.search(image)) is pinned


def test_the_image_runs_as_the_charts_numeric_non_root_user() -> None:
    runtime = stages(STEPS)[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {users[-1]}: numeric uid:gid, for runAsNonRoot"
    assert int(uid) > 0 and int(gid) > 0
    values = yaml.safe_load(VALUES.read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]
    # Nothing after USER switches back.
    assert runtime[-1][0] == "ENTRYPOINT"
    assert json_array(runtime[-1][1]) == ["modelfleet", "run"]


def json_array(text: str) -> list[str]:
    loaded: list[str] = yaml.safe_load(text)
    return loaded


def test_only_the_package_without_extras_and_without_dev_code_is_installed() -> None:
    build = stages(STEPS)[0]
    runs = [rest for keyword, rest in build if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    target = words[words.index("--prefix=/install") + 1]
    assert target == ".", f"pip installs {target!r}: the package without extras is '.'"
    # modelfleet.dev is deleted before the install, in the same step.
    assert words.index("rm") < words.index("pip")
    assert "operator/modelfleet/dev" in words[words.index("rm") : words.index("pip")]
    copies = [rest for keyword, rest in build if keyword == "COPY"]
    assert all(("tests" not in c and "bench" not in c and "hack" not in c) for c in copies)
    runtime = stages(STEPS)[-1]
    assert [rest for keyword, rest in runtime if keyword == "COPY"] == [
        "--from=build /install /usr/local"
    ]


def _image_like_package(tmp_path: Path) -> Path:
    """operator/modelfleet copied as the build stage leaves it: modelfleet.dev deleted."""
    target = tmp_path / "site-packages"
    shutil.copytree(
        ROOT / "operator" / "modelfleet",
        target / "modelfleet",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.rmtree(target / "modelfleet" / "dev")
    return target


PROBE = """
import json, sys
from modelfleet.cli.main import main
try:
    main(["run", "--help"])
except SystemExit:
    pass
import modelfleet.handlers.main  # what `run` starts
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", *args],
        capture_output=True,
        text=True,
        timeout=90,
        # -I ignores PYTHONPATH; the package goes in front through sys.path in the script.
        cwd=site,
        check=False,
    )


def _script(site: Path, body: str) -> str:
    return f"import sys; sys.path.insert(0, {str(site)!r})\n{body}"


def test_modelfleet_run_starts_without_dev_code(tmp_path: Path) -> None:
    site = _image_like_package(tmp_path)
    done = _run(site, "-c", _script(site, PROBE))
    assert done.returncode == 0, done.stderr
    assert "usage: modelfleet run" in done.stdout
    top_level = json.loads(done.stdout.strip().splitlines()[-1])
    third_party = _distributions(top_level)
    allowed = _runtime_closure()
    extra = sorted(third_party - allowed)
    assert not extra, f"`modelfleet run` loads {extra}, not runtime dependencies of modelfleet"
    # The check can fail: plotly (the `report` extra) is not a runtime dependency.
    assert "plotly" not in allowed


def test_the_image_cli_names_a_missing_dev_command_plainly(tmp_path: Path) -> None:
    site = _image_like_package(tmp_path)
    main = "from modelfleet.cli.main import main; sys.exit(main({argv!r}))"
    listing = _run(site, "-c", _script(site, main.format(argv=["--help"])))
    assert listing.returncode == 0, listing.stderr
    listed = set(re.findall(r"^ {4}(\w+) ", listing.stdout, re.MULTILINE))
    assert listed == {"run", "plan", "cost", "crds"}, listing.stdout
    asked = _run(site, "-c", _script(site, main.format(argv=["cluster", "up"])))
    assert asked.returncode == 2
    assert "development command, not part of this install" in asked.stderr
    assert "Traceback" not in asked.stderr


def _distributions(top_level: list[str]) -> set[str]:
    """Distribution names (normalized) of the third-party top-level modules loaded."""
    mapping = importlib.metadata.packages_distributions()
    # cython_runtime: a module Cython-compiled extensions (aiohttp, yarl) create at import.
    stdlib = set(sys.stdlib_module_names) | {"modelfleet", "__main__", "cython_runtime"}
    names: set[str] = set()
    for module in top_level:
        if module in stdlib or module.startswith("_"):
            continue
        for dist in mapping.get(module, [module]):
            names.add(_normal(dist))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure() -> set[str]:
    """modelfleet's dependencies (no extras) and theirs, as installed here."""
    pyproject: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    todo = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _normal(requirement.name)
        if name in seen:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(Requirement(r) for r in requires)
    return seen
