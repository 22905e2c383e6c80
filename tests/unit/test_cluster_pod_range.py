"""Each local cluster's own pod range: never shared with another local cluster, never the API
server's 127.0.0.0/16, recorded in state.json (and read back from states written before)."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from modelfleet.dev.cluster import control_plane, pod_range

LOOPBACK = IPv4Network("127.0.0.0/8")


def test_a_range_is_a_loopback_16_outside_the_api_servers_16() -> None:
    for name in ("modelfleet", "modelfleet-test-123", "b"):
        network = IPv4Network(pod_range.choose_pod_cidr(name, []))
        assert network.prefixlen == 16 and network.subnet_of(LOOPBACK)
        assert not network.overlaps(pod_range.RESERVED)
        assert network != IPv4Network("127.255.0.0/16")  # holds the loopback broadcast


def test_the_same_name_gets_the_same_range_back() -> None:
    assert pod_range.choose_pod_cidr("demo", []) == pod_range.choose_pod_cidr("demo", [])


def test_a_taken_range_is_skipped_whatever_its_size() -> None:
    first = pod_range.choose_pod_cidr("demo", [])
    second = pod_range.choose_pod_cidr("demo", [first])
    assert second != first
    # A wider range taken elsewhere (e.g. a /8 given by hand) covers every candidate.
    with pytest.raises(pod_range.PodRangeError, match="cluster down"):
        pod_range.choose_pod_cidr("demo", ["127.0.0.0/8"])


def test_clusters_started_one_after_another_never_share_a_range() -> None:
    taken: list[str] = []
    for index in range(len(pod_range.CANDIDATES)):
        taken.append(pod_range.choose_pod_cidr(f"cluster-{index}", taken))
    networks = [IPv4Network(cidr) for cidr in taken]
    assert len(set(networks)) == len(networks) == 254
    with pytest.raises(pod_range.PodRangeError):
        pod_range.choose_pod_cidr("one-too-many", taken)


@pytest.mark.parametrize(
    ("ip", "inside"),
    [("127.42.3.4", True), ("127.43.0.1", False), ("::1", False), ("not an ip", False)],
)
def test_contains(ip: str, inside: bool) -> None:
    assert pod_range.contains("127.42.0.0/16", ip) is inside


def _write_state(cache: Path, name: str, **fields: object) -> None:
    directory = cache / "cluster" / name
    directory.mkdir(parents=True)
    state = {
        "name": name,
        "state_dir": str(directory),
        "kubeconfig": str(directory / "kubeconfig"),
        "server": f"https://127.0.0.1:{6443 + len(name)}",
        **fields,
    }
    (directory / "state.json").write_text(json.dumps(state))


def test_states_record_the_range_and_old_states_mean_the_legacy_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFLEET_CACHE_DIR", str(tmp_path))
    _write_state(tmp_path, "old")  # written before ranges were per cluster
    _write_state(tmp_path, "new", pod_cidr="127.42.0.0/16")
    (tmp_path / "cluster" / "broken").mkdir()
    (tmp_path / "cluster" / "broken" / "state.json").write_text("{")

    ranges = {state.name: state.pod_cidr for state in control_plane.all_states()}
    assert ranges == {"old": pod_range.LEGACY_POD_CIDR, "new": "127.42.0.0/16"}
    assert pod_range.choose_pod_cidr("third", ranges.values()) not in ranges.values()

    found = control_plane.find_by_server("https://127.0.0.1:6446/")
    assert found is not None and found.name == "new"
    assert control_plane.find_by_server("https://127.0.0.1:1") is None
