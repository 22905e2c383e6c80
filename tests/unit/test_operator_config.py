"""Operator start-up configuration: price overrides are validated before anything runs."""

from pathlib import Path

import pytest

from modelfleet.handlers.main import load_price_sheet
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
