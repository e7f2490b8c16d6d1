"""A real ``strata serve --tls-cert --tls-key`` process with authentication on, driven by skopeo
over HTTPS with a CA made here; and the first start's administrator account."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import os
import ssl
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.clients import require_tool, run
from support.server import StrataServer

from .helpers import basic

pytestmark = [pytest.mark.server, pytest.mark.interop]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1: (CA dir for skopeo, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("strata test CA"))
          .issuer_name(_name("strata test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    certs = root / "certs"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = root / "server.crt", root / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return certs, cert_path, key_path


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(root: Path, tag: str = "v1") -> tuple[Path, str, str]:
    """A one-layer OCI image layout (no external tools) whose layer carries 3 MiB that do not
    compress (a body over TLS is never taken from the socket: ``server.rawbody``); returns
    (path, manifest digest, layer digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/motd", b"hello over TLS\n"), ("big.bin", os.urandom(3 << 20))):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_sha256(raw.getvalue())]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha256(layer), "size": len(layer)}]}).encode()
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / _sha256(blob).split(":")[1]).write_bytes(blob)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _sha256(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return root, _sha256(manifest), _sha256(layer)


def skopeo(tmp_path: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
           "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "TMPDIR": str(tmp_path)}
    proc = run([require_tool("skopeo"), "--policy", str(policy), *args], env=env, check=check,
               timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_skopeo_over_tls_with_token_auth(tmp_path: Path) -> None:
    require_tool("skopeo")
    certs, cert, key = make_pki(tmp_path / "pki")
    layout, manifest_digest, layer_digest = make_layout(tmp_path / "layout")
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    with StrataServer(tmp_path / "server", "--tls-cert", str(cert), "--tls-key", str(key),
                      tls_context=context) as server:
        assert server.url.startswith("https://")
        ref = f"docker://{server.host_port}/f25/tls:1"
        # Anonymous clients may not push ...
        code, _, err = skopeo(tmp_path, "copy", "--dest-cert-dir", str(certs),
                              f"oci:{layout}:v1", ref, check=False)
        assert code != 0 and ("denied" in err or "unauthorized" in err), err
        # ... nor may a wrong password.
        code, _, err = skopeo(tmp_path, "copy", "--dest-cert-dir", str(certs),
                              "--dest-creds", "admin:not-the-password",
                              f"oci:{layout}:v1", ref, check=False)
        assert code != 0 and "unauthorized" in err.lower(), err
        skopeo(tmp_path, "copy", "--dest-cert-dir", str(certs),
               "--dest-creds", server.admin_creds, f"oci:{layout}:v1", ref)
        # Anyone may pull, over verified TLS.
        _, out, _ = skopeo(tmp_path, "inspect", "--cert-dir", str(certs), ref)
        assert json.loads(out)["Digest"] == manifest_digest
        _, out, _ = skopeo(tmp_path, "inspect", "--raw", "--cert-dir", str(certs),
                           "--creds", server.admin_creds, ref)
        assert _sha256(out.encode()) == manifest_digest
        layer = server.request("GET", f"/v2/f25/tls/blobs/{layer_digest}",
                               headers=server.admin_headers)
        assert layer.status == 200 and _sha256(layer.body) == layer_digest
        # Without the CA, the server's certificate is not trusted.
        code, _, err = skopeo(tmp_path, "inspect", ref, check=False)
        assert code != 0 and "certificate" in err, err
        # The harness speaks HTTPS too, and the token endpoint is there.
        resp = server.request("GET", "/auth/token?service=strata&scope=repository:f25/tls:pull")
        assert resp.status == 200 and json.loads(resp.body)["token"]
        assert server.request("GET", "/v2/").status == 401
        assert server.request("GET", "/v2/", headers=server.admin_headers).status == 200
    assert "https://" in server.log_text()


def test_first_start_generates_the_admin_password(tmp_path: Path) -> None:
    server = StrataServer(tmp_path / "server", env={"STRATA_ADMIN_PASSWORD": ""})
    with server:
        path = server.data_dir / "auth" / "admin-password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
        key = server.data_dir / "auth" / "webhook-key"  # the secret key sealing the signing key
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        password = path.read_text().strip()
        assert str(path) in server.log_text()
        ok = server.request("GET", "/v2/", headers=basic("admin", password))
        assert ok.status == 200
        bad = server.request("GET", "/v2/", headers=basic("admin", password + "x"))
        assert bad.status == 401
        # A restart keeps the account (and the signing key): nothing is generated again.
        resp = server.request("GET", "/auth/token?scope=repository:a/b:push",
                              headers=basic("admin", password))
        token = json.loads(resp.body)["token"]
        server.restart()
        assert path.read_text().strip() == password
        resp = server.request("POST", "/v2/a/b/blobs/uploads/",
                              headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 202
    assert server.log_text().count("created the administrator account") == 1


def test_no_auth_serves_an_open_registry(tmp_path: Path) -> None:
    with StrataServer(tmp_path / "server", "--no-auth") as server:
        assert server.request("GET", "/v2/").status == 200
        assert server.request("POST", "/v2/a/b/blobs/uploads/").status == 202
        assert server.request("GET", "/auth/token").status == 404
        assert not (server.data_dir / "auth" / "admin-password").exists()
    assert "authentication is OFF" in server.log_text()
