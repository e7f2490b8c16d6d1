"""An install from before the signing keys moved to the database (issue 17): its
``DATA/auth/signing-key.pem`` is imported by the next ``strata serve`` and removed, and the
tokens it signed stay valid; the server goes on signing with that key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keys import libtrust_key_id, load_or_create_signing_key
from strata.auth.tokens import TokenIssuer
from support.server import StrataServer

pytestmark = pytest.mark.server


def test_a_key_file_from_before_is_imported_and_its_tokens_stay_valid(tmp_path: Path) -> None:
    server = StrataServer(tmp_path / "old", "--workers", "2")
    key_file = server.data_dir / "auth" / "signing-key.pem"
    key = load_or_create_signing_key(key_file)  # what an older strata made on its first start
    now = int(time.time())
    old_token = TokenIssuer(key, "strata-token-issuer", "strata").issue("", [], now).token
    foreign = TokenIssuer(ec.generate_private_key(ec.SECP256R1()), "strata-token-issuer",
                          "strata").issue("", [], now).token
    with server:
        assert not key_file.exists()
        log = server.log_text()
        assert "imported the token-signing key" in log and "active" in log, log
        for _ in range(4):  # both workers
            assert server.request("GET", "/v2/", headers={
                "Authorization": f"Bearer {old_token}"}).status == 200
            assert server.request("GET", "/v2/", headers={
                "Authorization": f"Bearer {foreign}"}).status == 401
        resp = server.request("GET", "/auth/token?service=strata", headers=server.admin_headers)
        issued = json.loads(resp.body)["token"]
        assert jwt.get_unverified_header(issued)["kid"] == libtrust_key_id(key.public_key())
        server.stop()
        server.start()  # nothing to import any more; the key is in the database
        assert "imported" not in server.log_text().rsplit("=== ", 1)[-1]
        assert server.request("GET", "/v2/", headers={
            "Authorization": f"Bearer {old_token}"}).status == 200
