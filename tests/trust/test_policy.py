"""``strata trust config``'s output, as data: the sigstoreSigned requirement (one key inline,
or several after a rotation), matchRepository for the host strata signs for, remapIdentity for
another host, and the registries.d snippet."""

from __future__ import annotations

import base64

import pytest

from strata.trust.keys import Passphrase, generate
from strata.trust.service import client_config

PASS = Passphrase(b"policy test passphrase")


def keys_json(count: int) -> dict[str, object]:
    return {"namespace": "f25", "registry": "registry.example", "signed_identity":
            "registry.example/f25",
            "keys": [{"public_key": generate(PASS).public_pem,
                      "status": "current" if i == 0 else "retired"} for i in range(count)]}


def test_one_key_inline_and_match_repository() -> None:
    data = keys_json(1)
    config = client_config(data, None)
    assert config["host"] == "registry.example"
    assert config["policy"]["default"] == [{"type": "insecureAcceptAnything"}]
    [req] = config["policy"]["transports"]["docker"]["registry.example/f25"]
    assert req["type"] == "sigstoreSigned"
    assert base64.b64decode(req["keyData"]).decode() == data["keys"][0]["public_key"]  # type: ignore[index]
    assert req["signedIdentity"] == {"type": "matchRepository"}
    assert config["registries_d"] == (
        "docker:\n  registry.example:\n    use-sigstore-attachments: true\n")


def test_rotated_keys_all_inline_and_another_host_remapped() -> None:
    data = keys_json(3)
    config = client_config(data, "mirror.example:5000", ["f25/a", "f25/b"])
    docker = config["policy"]["transports"]["docker"]
    assert sorted(docker) == ["mirror.example:5000/f25", "mirror.example:5000/f25/a",
                              "mirror.example:5000/f25/b"]
    [exact] = docker["mirror.example:5000/f25/b"]
    assert exact["signedIdentity"] == {"type": "exactRepository",
                                       "dockerRepository": "registry.example/f25/b"}
    assert "keyData" not in exact
    assert [base64.b64decode(k).decode() for k in exact["keyDatas"]] == [
        k["public_key"] for k in data["keys"]]  # type: ignore[attr-defined]
    # the rest of the namespace under that name: refused (fail closed)
    assert docker["mirror.example:5000/f25"] == [{"type": "reject"}]
    assert "mirror.example:5000:" in config["registries_d"]


def test_no_key_no_policy() -> None:
    with pytest.raises(ValueError):
        client_config(keys_json(0), None)
