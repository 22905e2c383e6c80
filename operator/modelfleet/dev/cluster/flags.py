"""Command lines of the control-plane components (pure: paths and ports in, argv out).

Everything listens on 127.0.0.1. The service range and kwok's pod CIDR are disjoint; pod IPs sit
inside 127.0.0.0/8 so a process bound to a pod's IP can stand in for the pod's server (each
cluster gets its own /16 there, see `pod_range`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelfleet.dev.cluster.build import Binaries
from modelfleet.dev.cluster.credentials import CertificateFiles, pki_files
from modelfleet.dev.cluster.nodes import KWOK_NODE_ANNOTATION

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
# On top of the defaults. OwnerReferencesPermissionEnforcement (on in OpenShift) refuses
# blockOwnerDeletion from a client that cannot update the owner's finalizers: tests must see it.
ADMISSION_PLUGINS = ("OwnerReferencesPermissionEnforcement",)
# The audit log rotates at this size, keeping this many old files: a demo left running for days
# holds at most (1 + backups) x size on disk, and a benchmark still finds its recent requests.
AUDIT_LOG_MAX_SIZE_MB = 50
AUDIT_LOG_MAX_BACKUPS = 3
NODE_LEASE_DURATION_SECONDS = 40
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Ports:
    """Free ports on 127.0.0.1 chosen at `up` time."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass(frozen=True)
class StateLayout:
    """Files inside one cluster's state directory."""

    root: Path

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def pki(self) -> CertificateFiles:
        return pki_files(self.root / "pki")

    @property
    def token_file(self) -> Path:
        return self.root / "tokens.csv"

    @property
    def stages_file(self) -> Path:
        return self.root / "kwok-stages.yaml"

    @property
    def audit_policy_file(self) -> Path:
        return self.root / "audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        """The current file; rotated ones sit beside it (see `audit.log_files`)."""
        return self.root / "audit" / "audit.log"

    @property
    def kwok_home(self) -> Path:
        return self.root / "kwok-home"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / "kubeconfigs" / f"{component}.yaml"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"


def etcd_args(binaries: Binaries, layout: StateLayout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binaries.etcd),
        "--name=modelfleet",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=modelfleet={peer}",
        "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
        "--log-level=warn",
    ]


def apiserver_args(binaries: Binaries, layout: StateLayout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={layout.root / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--token-auth-file={layout.token_file}",
        "--authorization-mode=RBAC",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
        # Who called what (Metadata level, see audit-policy.yaml): the chart's RBAC test compares
        # the operator's calls with the chart's rules, benchmarks count requests.
        f"--audit-policy-file={layout.audit_policy_file}",
        f"--audit-log-path={layout.audit_log}",
        f"--audit-log-maxsize={AUDIT_LOG_MAX_SIZE_MB}",
        f"--audit-log-maxbackup={AUDIT_LOG_MAX_BACKUPS}",
    ]


def controller_manager_args(binaries: Binaries, layout: StateLayout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={layout.component_kubeconfig('kube-controller-manager')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--leader-elect=false",
        "--controllers=*",
        "--profiling=false",
    ]


def scheduler_args(binaries: Binaries, layout: StateLayout, ports: Ports) -> list[str]:
    return [
        str(binaries.kube_scheduler),
        f"--kubeconfig={layout.component_kubeconfig('kube-scheduler')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_args(binaries: Binaries, layout: StateLayout, pod_cidr: str) -> list[str]:
    """kwok hands out pod IPs from `pod_cidr`, this cluster's own range (`pod_range`)."""
    return [
        str(binaries.kwok),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={layout.stages_file}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={pod_cidr}",
        "--node-ip=127.0.0.1",
        f"--node-lease-duration-seconds={NODE_LEASE_DURATION_SECONDS}",
    ]
