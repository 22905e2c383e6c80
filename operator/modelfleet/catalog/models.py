"""Model architectures: what the memory model needs, looked up by Hugging Face id or alias."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NativeDtype = Literal["bf16", "fp16", "fp8", "int8", "int4"]


class _Arch(BaseModel):
    # snake_case in the packaged YAML, camelCase in a ModelDeployment spec: both are accepted.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class MLA(_Arch):
    """Multi-head latent attention (DeepSeek V3/R1, Kimi K2): one compressed KV vector per layer."""

    kv_lora_rank: Annotated[int, Field(gt=0)]
    qk_rope_head_dim: Annotated[int, Field(ge=0)]


class ModelArch(_Arch):
    """Architecture facts of one model (from its config.json)."""

    id: Annotated[str, Field(min_length=1)] = "custom"
    aliases: tuple[str, ...] = ()
    params_b: Annotated[float, Field(gt=0, description="Total parameters, billions.")]
    active_b: Annotated[
        float | None, Field(gt=0, description="Active parameters per token (MoE), billions.")
    ] = None
    layers: Annotated[int, Field(gt=0)]
    hidden: Annotated[int, Field(gt=0)]
    attention_heads: Annotated[int, Field(gt=0)]
    kv_heads: Annotated[int | None, Field(gt=0)] = None
    head_dim: Annotated[int | None, Field(gt=0)] = None
    mla: MLA | None = None
    max_context: Annotated[int, Field(gt=0)]
    native_dtype: NativeDtype = "bf16"
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelArch:
        if self.active_b is not None and self.active_b > self.params_b:
            raise ValueError("active_b cannot exceed params_b")
        if self.mla is None and self.kv_heads is not None:
            if self.kv_heads > self.attention_heads:
                raise ValueError("kv_heads cannot exceed attention_heads")
            if self.attention_heads % self.kv_heads:
                raise ValueError("attention_heads must be a multiple of kv_heads")
        return self

    @property
    def total_params(self) -> float:
        """Parameters held in memory (all experts of a MoE)."""
        return self.params_b * 1e9

    @property
    def active_params(self) -> float:
        """Parameters used per token (MoE: the routed experts only)."""
        return (self.active_b if self.active_b is not None else self.params_b) * 1e9

    @property
    def effective_kv_heads(self) -> int:
        """KV heads; MHA models (no kv_heads given) have one per attention head."""
        return self.kv_heads if self.kv_heads is not None else self.attention_heads

    @property
    def effective_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden // self.attention_heads


def _derived_aliases(model_id: str) -> set[str]:
    name = model_id.rsplit("/", 1)[-1].lower()
    return {name, re.sub(r"-instruct.*$", "", name)}


class ModelCatalog:
    """Case-insensitive lookup by Hugging Face id, repository name or short alias."""

    def __init__(self, models: Iterable[ModelArch]) -> None:
        self.models: tuple[ModelArch, ...] = tuple(models)
        self._by_key: dict[str, ModelArch] = {}
        for model in self.models:
            keys = {model.id.lower(), *(a.lower() for a in model.aliases)}
            for key in keys:
                self._add(key, model, explicit=True)
        for model in self.models:
            for key in _derived_aliases(model.id):
                self._add(key, model, explicit=False)

    def _add(self, key: str, model: ModelArch, explicit: bool) -> None:
        other = self._by_key.get(key)
        if other is None:
            self._by_key[key] = model
        elif other.id != model.id and explicit:
            raise ValueError(f"model alias {key!r} names both {other.id} and {model.id}")
        # a derived alias never shadows an explicit one or another model's derived one

    def lookup(self, name: str) -> ModelArch | None:
        return self._by_key.get(name.strip().lower())

    def __len__(self) -> int:
        return len(self.models)


def parse_models(text: str) -> ModelCatalog:
    return ModelCatalog(ModelArch.model_validate(entry) for entry in yaml.safe_load(text) or [])


@cache
def default_models() -> ModelCatalog:
    """The catalog shipped in the package (read once)."""
    text = resources.files(__package__).joinpath("models.yaml").read_text(encoding="utf-8")
    return parse_models(text)
