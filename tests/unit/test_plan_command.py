"""`modelfleet plan` offline: manifest parsing, exit codes, JSON keys, field-level errors."""

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.cli.plan import add_plan_command
from modelfleet.plan.request import PlanInputError, request_from_manifest
from tests.architectures import PHI_4

NODES = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "kind": "Node",
            "metadata": {
                "name": "l4-0",
                "labels": {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "23034"},
            },
            "status": {"allocatable": {"nvidia.com/gpu": "4"}},
        },
        {
            "kind": "Node",
            "metadata": {
                "name": "h100-0",
                "labels": {
                    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                    "nvidia.com/gpu.memory": "81559",
                },
            },
            "status": {"allocatable": {"nvidia.com/gpu": "8"}},
        },
    ],
}


def run(tmp_path: Path, spec: dict[str, Any], *extra: str) -> tuple[int, str, str]:
    manifest = tmp_path / "md.yaml"
    manifest.write_text(yaml.safe_dump({"kind": "ModelDeployment", "spec": spec}))
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(yaml.safe_dump(NODES))
    parser = argparse.ArgumentParser()
    add_plan_command(parser.add_subparsers())
    argv = ["plan", "-f", str(manifest), *extra]
    argv = [arg.replace("NODES", str(nodes)) for arg in argv]
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_json_output(tmp_path: Path) -> None:
    spec = {
        "model": "r1-distill-qwen-7b",
        "gpu": {"product": "auto"},
        "extraArgs": ["--max-model-len=32768"],
    }
    code, out, _ = run(tmp_path, spec, "--inventory", "NODES", "-o", "json")
    assert code == 0
    result = json.loads(out)
    assert {
        "feasible",
        "gpuProduct",
        "gpusPerReplica",
        "nodesPerReplica",
        "hourlyCostPerReplica",
        "reason",
        "options",
    } <= result.keys()
    assert (result["gpuProduct"], result["gpusPerReplica"]) == ("NVIDIA-L4", 1)
    assert result["maxContextLength"] == 32768
    assert result["hourlyCostPerReplica"] == 0.7


def test_infeasible_exits_1_with_reason(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, {"model": "deepseek-r1"}, "--inventory", "NODES", "-o", "json")
    assert code == 1
    result = json.loads(out)
    assert not result["feasible"]
    assert "needs 648 GiB, 8x H100-80GB gives 573 GiB" in result["reason"]


def test_table_and_price_overrides(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("NVIDIA-L4: 0.55\n")
    code, out, _ = run(
        tmp_path,
        {"model": "llama-3.1-8b", "maxContextLength": 8192},
        "--inventory",
        "NODES",
        "--prices",
        str(prices),
    )
    assert code == 0
    assert out.startswith(
        "PLACEMENT for llama-3.1-8b (max context 8192, KV cache auto): 1x L4 at $0.55/h"
    )
    assert "$/1M" in out and "<- chosen" in out


def test_bad_prices_exit_2(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("NVIDIA-L4: free\n")
    code, _, err = run(
        tmp_path, {"model": "llama-3.1-8b"}, "--inventory", "NODES", "--prices", str(prices)
    )
    assert code == 2
    assert "NVIDIA-L4: must be a number of USD per GPU-hour" in err


def test_an_unreachable_cluster_is_bad_input(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-kubeconfig")
    code, _, err = run(tmp_path, {"model": "llama-3.1-8b"}, "--kubeconfig", missing)
    assert code == 2 and "cannot read the cluster" in err and "--inventory" in err


def test_all_gpus_hypothetical_inventory(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, {"model": "deepseek-r1"}, "--all-gpus", "-o", "json")
    assert code == 0
    result = json.loads(out)
    # 4x B200: 624.9 GiB weights + 10.7 KV + 4 x 1.5 = 641.6 <= 4 x 180 x 0.9 = 648 GiB, $22/h
    # (8x H200 would be $32/h)
    assert (result["gpuProduct"], result["gpusPerReplica"]) == ("NVIDIA-B200", 4)
    assert result["hourlyCostPerReplica"] == 22.0


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"model": "x", "maxContextLength": "long"}, "spec.maxContextLength:"),
        ({"model": "x", "quantization": "int3"}, "spec.quantization:"),
        ({"model": "x", "gpu": {"count": 16}}, "spec.gpu.count:"),
        ({"model": "x", "engine": "tgi"}, "spec.engine:"),
        (
            {"model": "x", "extraArgs": ["--gpu-memory-utilization", "1.5"]},
            "spec.gpuMemoryUtilization:",
        ),
        ({"model": "x", "architecture": {"paramsB": 7}}, "spec.architecture.layers:"),
        ({"gpu": {}}, "spec.model:"),
    ],
)
def test_field_level_errors(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(PlanInputError) as raised:
        request_from_manifest({"spec": spec})
    assert any(line.startswith(error) for line in raised.value.errors), raised.value.errors


def test_inline_architecture() -> None:
    request = request_from_manifest(
        {
            "spec": {
                "model": "acme/coder-7b",
                "architecture": {
                    "paramsB": 7,
                    "layers": 28,
                    "hidden": 3584,
                    "attentionHeads": 28,
                    "kvHeads": 4,
                    "maxContext": 32768,
                },
            }
        }
    )
    assert request.architecture is not None and request.architecture.id == "acme/coder-7b"


def test_plan_uses_an_inline_architecture(tmp_path: Path) -> None:
    spec = {"model": "microsoft/phi-4", "architecture": PHI_4}
    code, out, _ = run(tmp_path, spec, "--inventory", "NODES", "-o", "json")
    assert code == 0
    result = json.loads(out)
    # 27.4 GiB of weights + 3.1 KV: 2x L4 (40 GiB usable) at $1.40/h
    assert (result["gpuProduct"], result["gpusPerReplica"]) == ("NVIDIA-L4", 2)
    assert (result["maxContextLength"], result["estimatedMemoryGiB"]) == (16384, 33.5)
    code, out, _ = run(tmp_path, {"model": "microsoft/phi-4"}, "--inventory", "NODES")
    assert code == 1
    assert "give its architecture inline in spec.architecture" in out


def test_plan_with_an_fp8_kv_cache(tmp_path: Path) -> None:
    spec = {"model": "r1-distill-qwen-7b", "kvCacheDtype": "fp8"}
    code, out, _ = run(tmp_path, spec, "--inventory", "NODES")
    assert code == 0
    assert out.startswith("PLACEMENT for r1-distill-qwen-7b (max context 131072, KV cache fp8): ")
    assert "1x L4 at $0.70/h, the cheapest that fits (needs 19 GiB of 20 GiB" in out


@pytest.mark.parametrize("value", ["fp8", "fp8_e5m2", "fp8_e4m3"])
def test_an_fp8_kv_cache_flag_in_extra_args_counts_as_fp8(value: str) -> None:
    request = request_from_manifest(
        {"spec": {"model": "x", "extraArgs": ["--kv-cache-dtype", value]}}
    )
    assert request.kv_cache_dtype == "fp8"


def test_an_unknown_kv_cache_flag_value_names_where_it_came_from() -> None:
    with pytest.raises(PlanInputError) as raised:
        request_from_manifest({"spec": {"model": "x", "extraArgs": ["--kv-cache-dtype=int4"]}})
    assert raised.value.errors[0].startswith("spec.extraArgs --kv-cache-dtype: Input should be")


R1 = {"model": "deepseek-ai/DeepSeek-R1", "maxContextLength": 65536}
ISSUE_LOAD = ("--requests-per-second", "8", "--prompt-tokens", "2000", "--output-tokens", "1000")


def test_without_a_load_the_plan_shows_cost_per_token_at_full_use(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, R1, "--all-gpus")
    assert code == 0
    assert "4x B200 at $22.00/h, the cheapest that fits" in out
    assert "FLEET $/H" not in out
    assert (
        "No load given, so the cheapest replica. At full use 8x B200 costs $0.794 per 1M output "
        "tokens against $2.984" in out
    )


def test_a_load_on_the_command_line_picks_the_cheapest_fleet(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, R1, "--all-gpus", *ISSUE_LOAD)
    assert code == 0
    assert "1 replica of 8x H200 at $32.00/h, the cheapest fleet" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("GPU "))
    assert header.endswith("$/1M   REQ/S EACH  REPLICAS  FLEET $/H  FLEET $/1M  NOTE")
    chosen = next(line for line in lines if line.endswith("<- chosen")).split()
    assert chosen[:2] == ["8x", "H200"]
    assert chosen[-6:] == ["10.8", "1", "32.00", "1.111", "<-", "chosen"]
    b200 = next(line for line in lines if line.startswith("4x B200 ")).split()
    assert b200[-3:] == ["5", "110.00", "3.819"]
    assert "No load given" not in out


def test_a_flag_wins_over_the_manifest_load_and_ttft(tmp_path: Path) -> None:
    spec = {
        **R1,
        "expectedLoad": {"requestsPerSecond": 1, "promptTokens": 2000, "outputTokens": 1000},
    }
    code, out, _ = run(tmp_path, spec, "--all-gpus", "-o", "json")
    assert (code, json.loads(out)["options"][0]["gpuName"]) == (0, "B200")
    code, out, _ = run(tmp_path, spec, "--all-gpus", "-o", "json", "--requests-per-second", "8")
    data = json.loads(out)
    assert data["load"] == {"requestsPerSecond": 8.0, "promptTokens": 2000, "outputTokens": 1000}
    assert (data["gpuProduct"], data["gpusPerReplica"], data["basis"]) == (
        "NVIDIA-H200",
        8,
        "fleet",
    )
    code, out, _ = run(tmp_path, spec, "--all-gpus", "-o", "json", "--ttft-seconds", "0.01")
    assert code == 1
    assert "no replica meets the SLO" in json.loads(out)["message"]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (("--requests-per-second", "8"), "--prompt-tokens, --output-tokens: needed for a load"),
        (
            ("--prompt-tokens", "10", "--output-tokens", "10"),
            "--requests-per-second: needed for a load",
        ),
    ],
)
def test_an_incomplete_load_is_bad_input(
    tmp_path: Path, extra: tuple[str, ...], error: str
) -> None:
    code, _, err = run(tmp_path, R1, "--all-gpus", *extra)
    assert code == 2
    assert error in err


@pytest.mark.parametrize("value", ["0", "-1", "x", "inf"])
def test_load_flags_must_be_positive_numbers(tmp_path: Path, value: str) -> None:
    with pytest.raises(SystemExit):
        run(tmp_path, R1, "--all-gpus", "--requests-per-second", value)
