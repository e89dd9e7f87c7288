"""Self-signed certificates for tests (the openssl command line, as an operator would)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: Path, common_name: str, san: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A key and a one-day self-signed certificate for `san`: (key, certificate)."""
    key, cert = directory / "tls.key", directory / "tls.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={common_name}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return key, cert
