"""Hosted-API prices: the packaged table, overrides with field-level errors, compareTo."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelfleet.catalog.models import ModelArch, default_models
from modelfleet.cost.api_prices import (
    DEFAULT_COMPARE_TO,
    ApiPrice,
    ApiPriceError,
    ApiPriceTable,
    compare_to,
    default_api_prices,
    default_compare_to,
    model_class,
    parse_api_price_overrides,
)


def test_the_packaged_table_has_dated_rows_and_the_class_defaults() -> None:
    table = default_api_prices()
    assert len(table) == 8
    assert all(row.as_of for row in table)
    for key in DEFAULT_COMPARE_TO.values():
        assert table.find(key) is not None, key
    # the reference's dates survive the copy, whatever their precision
    assert table.find("openai/gpt-4o") == ApiPrice(
        provider="openai", model="gpt-4o", input=2.5, output=10.0, as_of="2025"
    )
    assert table.find("openai/gpt-5").as_of == "2026-Q2"  # type: ignore[union-attr]
    assert table.find("deepseek/deepseek-chat").as_of == "2026-04"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("openai/gpt-4o", "openai/gpt-4o", id="key"),
        pytest.param("  OpenAI/GPT-4o ", "openai/gpt-4o", id="any-case"),
        pytest.param("gemini-2.5-flash", "google/gemini-2.5-flash", id="bare-model-when-unique"),
        pytest.param("gpt-4", None, id="no-prefix-match"),
        pytest.param("azure/gpt-4o", None, id="other-provider"),
    ],
)
def test_find(name: str, expected: str | None) -> None:
    row = default_api_prices().find(name)
    assert (row.key if row else None) == expected


def test_a_bare_model_name_sold_by_two_providers_is_ambiguous() -> None:
    row = {"model": "llama-3.1-70b", "input": 0.5, "output": 0.7, "as_of": "2026"}
    table = ApiPriceTable(
        [ApiPrice(provider="together", **row), ApiPrice(provider="fireworks", **row)]
    )
    assert table.find("llama-3.1-70b") is None
    assert table.find("fireworks/llama-3.1-70b") is not None


def test_cost_of_tokens() -> None:
    row = ApiPrice(provider="p", model="m", input=3.0, output=15.0, as_of="2025-11")
    assert row.cost(2_000_000, 1_000_000) == pytest.approx(6.0 + 15.0)


BASE = ApiPriceTable(
    [
        ApiPrice(provider="openai", model="gpt-4o", input=2.5, output=10.0, as_of="2025"),
        ApiPrice(provider="google", model="gemini-2.5-flash", input=0.3, output=2.5, as_of="2026"),
    ]
)


@pytest.mark.parametrize(
    ("overrides", "key", "expected"),
    [
        pytest.param(None, "openai/gpt-4o", (2.5, 10.0, "2025", ""), id="none-keeps-base"),
        pytest.param(
            {"openai/gpt-4o": {"input": 2.0, "output": 8.0, "asOf": "2026-06"}},
            "openai/gpt-4o",
            (2.0, 8.0, "2026-06", ""),
            id="new-price-new-date",
        ),
        pytest.param(
            {"OpenAI/GPT-4o": {"output": 9.0, "asOf": "2026-06-30"}},
            "openai/gpt-4o",
            (2.5, 9.0, "2026-06-30", ""),
            id="one-field-merged-any-case",
        ),
        pytest.param(
            {"openai/gpt-4o": {"note": "batch API halves it"}},
            "openai/gpt-4o",
            (2.5, 10.0, "2025", "batch API halves it"),
            id="note-only-keeps-date",
        ),
        pytest.param(
            {"acme/house-model": {"input": 0.1, "output": 0.4, "asOf": 2026}},
            "acme/house-model",
            (0.1, 0.4, "2026", ""),
            id="new-row-year-as-int",
        ),
        pytest.param(
            {"acme/m": {"input": 0, "output": 1, "asOf": datetime.date(2026, 7, 1)}},
            "acme/m",
            (0.0, 1.0, "2026-07-01", ""),
            id="new-row-yaml-date",
        ),
        pytest.param(
            {"together/meta-llama/Llama-3.3-70B": {"input": 0.9, "output": 0.9, "asOf": "2026"}},
            "together/meta-llama/Llama-3.3-70B",
            (0.9, 0.9, "2026", ""),
            id="model-with-slash",
        ),
    ],
)
def test_overrides_merge(overrides: Any, key: str, expected: tuple[Any, ...]) -> None:
    table = parse_api_price_overrides(overrides, BASE)
    row = table.find(key)
    assert row is not None
    assert (row.input, row.output, row.as_of, row.note) == expected
    assert len(table) == len(BASE) + (0 if BASE.find(key) else 1)


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        pytest.param(
            ["openai/gpt-4o"],
            ["f: must be a mapping from provider/model to {input, output, asOf}"],
            id="not-a-mapping",
        ),
        pytest.param(
            {"gpt-4o": {"input": 1, "output": 2, "asOf": "2026"}},
            ["f.gpt-4o: the key must be provider/model, e.g. openai/gpt-4o"],
            id="key-without-provider",
        ),
        pytest.param(
            {"open ai/x": {"input": 1, "output": 2, "asOf": "2026"}},
            ["f.open ai/x: the key must be provider/model, e.g. openai/gpt-4o"],
            id="space-in-provider",
        ),
        pytest.param(
            {"openai/gpt-4o": 2.0},
            ["f.openai/gpt-4o: must be a mapping with input, output and asOf"],
            id="bare-number",
        ),
        pytest.param(
            {"openai/gpt-4o": {"input": 2.0, "asOf": "2026", "outptu": 8}},
            ["f.openai/gpt-4o: unknown field(s) outptu (input, output, asOf, note)"],
            id="unknown-field",
        ),
        pytest.param(
            {"openai/gpt-4o": {"input": -1, "output": "8", "asOf": "2026"}},
            [
                "f.openai/gpt-4o.input: must be a finite number >= 0, got -1",
                "f.openai/gpt-4o.output: must be a number of USD per 1M tokens, got '8'",
            ],
            id="negative-and-text",
        ),
        pytest.param(
            {"openai/gpt-4o": {"input": float("nan"), "output": True, "asOf": "2026"}},
            [
                "f.openai/gpt-4o.input: must be a finite number >= 0, got nan",
                "f.openai/gpt-4o.output: must be a number of USD per 1M tokens, got True",
            ],
            id="nan-and-bool",
        ),
        pytest.param(
            {"openai/gpt-4o": {"input": 2.0, "asOf": "June 2026"}},
            [
                "f.openai/gpt-4o.asOf: must be the date the price was read (2026, 2026-Q2, "
                "2026-05 or 2026-05-31), got 'June 2026'"
            ],
            id="bad-date",
        ),
        pytest.param(
            {"openai/gpt-4o": {"output": 8.0}},
            [
                "f.openai/gpt-4o.asOf: required when input or output changes (the row says "
                "2025, which would no longer be true)"
            ],
            id="price-change-without-date",
        ),
        pytest.param(
            {"acme/new": {"input": 1.0}},
            ["f.acme/new: a new row needs output, asOf"],
            id="new-row-incomplete",
        ),
    ],
)
def test_bad_overrides_name_every_field(overrides: Any, errors: list[str]) -> None:
    with pytest.raises(ApiPriceError) as raised:
        parse_api_price_overrides(overrides, BASE, prefix="f")
    assert raised.value.errors == errors


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    bad = {"a": {}, "openai/gpt-4o": {"output": 8.0}, "x/y": {"input": -2}}
    with pytest.raises(ApiPriceError) as raised:
        parse_api_price_overrides(bad, BASE)
    assert len(raised.value.errors) == 4


def _arch(params_b: float, active_b: float | None = None) -> ModelArch:
    return ModelArch(
        params_b=params_b,
        active_b=active_b,
        layers=32,
        hidden=4096,
        attention_heads=32,
        kv_heads=8,
        max_context=32768,
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("deepseek-ai/DeepSeek-R1", "frontier"),  # 671B MoE
        ("moonshotai/Kimi-K2-Instruct", "frontier"),  # 1T MoE
        ("zai-org/GLM-4.5", "frontier"),  # 355B MoE
        ("Qwen/Qwen3-235B-A22B", "frontier"),  # 235B MoE
        ("zai-org/GLM-4.5-Air", "general"),  # 106B MoE
        ("Qwen/Qwen3-30B-A3B", "general"),  # small MoE
        ("meta-llama/Llama-3.1-70B-Instruct", "general"),
        ("Qwen/Qwen2.5-7B-Instruct", "general"),
    ],
)
def test_model_class_of_catalog_models(model: str, expected: str) -> None:
    assert model_class(default_models().lookup(model)) == expected


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        pytest.param(_arch(405), "deepseek/deepseek-chat", id="dense-405b-inline"),
        pytest.param(_arch(200, 20), "deepseek/deepseek-chat", id="moe-at-threshold"),
        pytest.param(_arch(199.9), "google/gemini-2.5-flash", id="just-below"),
        pytest.param(None, "google/gemini-2.5-flash", id="unknown-size"),
    ],
)
def test_default_compare_to(arch: ModelArch | None, expected: str) -> None:
    assert default_compare_to(arch) == expected
    assert compare_to(None, arch, default_api_prices()).key == expected


def test_compare_to_names_the_field_of_an_unknown_model() -> None:
    assert compare_to("gpt-5", None, default_api_prices()).key == "openai/gpt-5"
    with pytest.raises(ApiPriceError) as raised:
        compare_to("openai/gpt-6", None, default_api_prices())
    assert raised.value.errors[0].startswith(
        "spec.cost.compareTo: no hosted API price named 'openai/gpt-6' (known: "
        "alibaba/qwen3-max, anthropic/claude-sonnet-4.5,"
    )
