"""Certificates, keys, tokens and kubeconfigs for the local control plane.

Keys come from the `openssl` CLI (the venv has no `cryptography`). Components authenticate with
static tokens: the admin in `system:masters`, controller-manager and scheduler as the users their
bootstrap RBAC roles are bound to.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Token users: name -> groups. kwok patches node and pod status, so it runs as an admin.
TOKEN_USERS: dict[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "system:kube-controller-manager": (),
    "system:kube-scheduler": (),
    "kwok": ("system:masters",),
}


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files under the state dir's `pki/`."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    service_account_public_key: Path


def pki_files(pki_dir: Path) -> CertificateFiles:
    return CertificateFiles(
        ca_cert=pki_dir / "ca.crt",
        ca_key=pki_dir / "ca.key",
        serving_cert=pki_dir / "apiserver.crt",
        serving_key=pki_dir / "apiserver.key",
        service_account_key=pki_dir / "sa.key",
        service_account_public_key=pki_dir / "sa.pub",
    )


def generate_pki(pki_dir: Path) -> CertificateFiles:
    """A CA, an apiserver serving cert for 127.0.0.1/localhost, and a service-account key pair."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    files = pki_files(pki_dir)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "3650", "-subj", "/CN=modelfleet-local-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-keyout", str(files.ca_key), "-out", str(files.ca_cert),
    )  # fmt: skip
    csr = pki_dir / "apiserver.csr"
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=kube-apiserver", "-keyout", str(files.serving_key), "-out", str(csr),
    )  # fmt: skip
    extensions = pki_dir / "apiserver.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert), "-CAkey", str(files.ca_key),
        "-CAcreateserial", "-days", "3650", "-extfile", str(extensions),
        "-out", str(files.serving_cert),
    )  # fmt: skip
    _openssl("genrsa", "-out", str(files.service_account_key), "2048")
    _openssl(
        "rsa", "-in", str(files.service_account_key), "-pubout",
        "-out", str(files.service_account_public_key),
    )  # fmt: skip
    return files


def new_tokens() -> dict[str, str]:
    """A fresh random bearer token per user of TOKEN_USERS."""
    return {user: secrets.token_hex(24) for user in TOKEN_USERS}


def render_token_file(tokens: dict[str, str]) -> str:
    """kube-apiserver `--token-auth-file` CSV: token,user,uid,"groups"."""
    lines = []
    for user, token in tokens.items():
        groups = ",".join(TOKEN_USERS[user])
        lines.append(f'{token},{user},{user},"{groups}"' if groups else f"{token},{user},{user}")
    return "\n".join(lines) + "\n"


def render_kubeconfig(cluster_name: str, server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    """A kubeconfig with the CA embedded, so it still works after being copied elsewhere."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": cluster_name, "user": {"token": token}}],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
    }


def write_kubeconfig(path: Path, kubeconfig: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    path.chmod(0o600)


def token_kubeconfig(admin: Path, token: str, path: Path, namespace: str | None = None) -> Path:
    """A kubeconfig for the same server and CA as `admin`, authenticating with `token` (a
    ServiceAccount's): to run the operator as that account rather than as the admin."""
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    own_context: dict[str, Any] = {"cluster": "local", "user": "token"}
    if namespace:
        own_context["namespace"] = namespace
    write_kubeconfig(
        path,
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster["cluster"]}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "token", "context": own_context}],
            "current-context": "token",
        },
    )
    return path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{result.stderr[-2000:]}")
