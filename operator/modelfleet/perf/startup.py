"""How long an engine replica takes from pod start to Ready, by the state of its weights cache.

A warm cache skips the download, not the start-up: the engine still starts its processes, reads
every weight into GPU memory, compiles the model (torch.compile) and captures CUDA graphs. For a
70B model that is minutes. Pure arithmetic over documented numbers (docs/cache.md has the table
with sources); `modelfleet simulate --cache warm|cold` uses it.

Sources of the defaults (measurements reported with vLLM's own log lines):
- process start to engine init (imports, CUDA context, API server): ~30 s unlogged before the
  engine's first step for a 3B model, vllm-project/vllm issue 20264.
- torch.compile from a cold compile cache: 28.8 s for Llama-3.1-8B (32 layers),
  kubernetes-sigs/gateway-api-inference-extension PR 550; cached it still took 7.5 s
  (issue 20264). Our engine pods keep the compile cache in an emptyDir, so every new pod
  compiles cold: 0.9 s per layer.
- CUDA graph capture: 17 s for Llama-3.2-3B (28 layers), issue 20264; 43 s reported for a
  larger capture profile on NVIDIA's Nemotron card; 0.6 s per layer.
- weights into GPU memory: 3.4 GiB in 0.9 s from the page cache (issue 20264, ~3.8 GiB/s);
  7.6 GiB in 27 s from a cold disk (vllm PR 44106, ~0.3 GiB/s). Default 1 GiB/s: a
  ReadWriteMany network volume or a local disk read cold.
- download from the Hub: the plain Python client saturates at ~500 MB/s on very fast links
  (huggingface/hf_transfer README); default 0.4 GiB/s. A 70B model then takes ~5.5 min to
  download and ~10 min to start cold, in line with "load llama 70B more than 10min"
  (vllm-project/vllm issue 10702).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CacheState = Literal["warm", "cold"]
CACHE_STATES: tuple[CacheState, ...] = ("warm", "cold")


@dataclass(frozen=True)
class StartupFacts:
    """The documented numbers above; each overridable for a cluster that measured its own."""

    process_seconds: float = 30.0
    compile_seconds_per_layer: float = 0.9
    graph_capture_seconds_per_layer: float = 0.6
    load_gib_per_second: float = 1.0
    download_gib_per_second: float = 0.4

    def __post_init__(self) -> None:
        if min(self.load_gib_per_second, self.download_gib_per_second) <= 0:
            raise ValueError("bandwidths must be positive")
        if (
            min(
                self.process_seconds,
                self.compile_seconds_per_layer,
                self.graph_capture_seconds_per_layer,
            )
            < 0
        ):
            raise ValueError("durations must not be negative")


@dataclass(frozen=True)
class Startup:
    """Seconds from pod start to Ready, by step."""

    download: float
    process: float
    load: float
    compile: float
    graph_capture: float

    @property
    def total(self) -> float:
        return self.download + self.process + self.load + self.compile + self.graph_capture


def startup(
    weights_gib: float,
    layers: int,
    cache: CacheState,
    facts: StartupFacts = StartupFacts(),
    enforce_eager: bool = False,
) -> Startup:
    """One replica's start-up. `cold`: the weights are downloaded first (no cache, or a node
    that never held this revision); `warm`: they are read from the cache. `enforce_eager`
    (vLLM --enforce-eager) skips compilation and graph capture, at a cost in decode speed."""
    if weights_gib <= 0 or layers <= 0:
        raise ValueError("weights_gib and layers must be positive")
    if cache not in CACHE_STATES:
        raise ValueError(f"cache must be warm or cold, got {cache!r}")
    download = weights_gib / facts.download_gib_per_second if cache == "cold" else 0.0
    graphs = 0.0 if enforce_eager else layers * facts.graph_capture_seconds_per_layer
    return Startup(
        download=download,
        process=facts.process_seconds,
        load=weights_gib / facts.load_gib_per_second,
        compile=0.0 if enforce_eager else layers * facts.compile_seconds_per_layer,
        graph_capture=graphs,
    )
