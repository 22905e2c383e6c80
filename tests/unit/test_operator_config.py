"""Operator start-up configuration: price overrides are validated before anything runs."""

from pathlib import Path

import pytest

from modelfleet.cost import default_api_prices
from modelfleet.handlers.main import cost_write_seconds, load_api_prices, load_price_sheet
from modelfleet.plan.prices import PriceSheet


def test_no_file_means_catalog_prices() -> None:
    assert load_price_sheet(None) == PriceSheet()


def test_overrides_replace_catalog_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("NVIDIA-L4: 0.55\nNVIDIA-H200: {onDemand: 3.5, spot: 2.1}\n")
    sheet = load_price_sheet(str(path))
    assert sheet.per_gpu_hour("NVIDIA-L4", None) == 0.55
    assert sheet.per_gpu_hour("NVIDIA-H200", None, spot=True) == 2.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NVIDIA-L4: cheap\n", "NVIDIA-L4: must be a number of USD per GPU-hour"),
        ("NVIDIA-L4: -1\n", "NVIDIA-L4: must be a finite number >= 0"),
        ("NVIDIA-L4: {onDemand: 1, sopt: 0.5}\n", "NVIDIA-L4: unknown field(s) sopt"),
        ("- 1\n", "must be a mapping from GPU product label"),
        ("NVIDIA-L4: [\n", "not YAML"),
    ],
)
def test_bad_overrides_stop_the_operator_with_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stopped:
        load_price_sheet(str(path))
    assert expected in str(stopped.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"missing\.yaml: No such file"):
        load_price_sheet(str(tmp_path / "missing.yaml"))


def test_api_price_overrides_are_merged(tmp_path: Path) -> None:
    assert load_api_prices(None) == default_api_prices()
    path = tmp_path / "api.yaml"
    path.write_text("acme/house-model: {input: 0.1, output: 0.4, asOf: 2026-07-01}\n")
    row = load_api_prices(str(path)).find("acme/house-model")
    assert row is not None and (row.input, row.output, row.as_of) == (0.1, 0.4, "2026-07-01")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("openai/gpt-4o: {input: 2.0}\n", "openai/gpt-4o.asOf"),  # a new price needs its date
        ("acme/x: {input: -1, output: 1, asOf: 2026}\n", "acme/x.input"),
        ("[not, a, mapping]\n", "api.yaml"),
        ("a: [unclosed\n", "not YAML"),
    ],
)
def test_bad_api_price_overrides_stop_the_operator_naming_the_field(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stopped:
        load_api_prices(str(path))
    assert named in str(stopped.value)


def test_cost_write_seconds() -> None:
    assert cost_write_seconds(None) == 300
    assert cost_write_seconds("30") == 30
    for bad in ("0", "-5", "soon", "99999"):
        with pytest.raises(SystemExit, match="MODELFLEET_COST_WRITE_SECONDS"):
            cost_write_seconds(bad)
