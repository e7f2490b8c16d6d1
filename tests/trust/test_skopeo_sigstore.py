"""Real-client proof (issue 16): Debian 13's skopeo, with the ``policy.json`` and
``registries.d`` that ``strata trust config`` prints, accepts a released image (its signature,
made at publish with the namespace's key, verifies), refuses an image no release signed, and
refuses one signed by another key -- here a key rotation: a policy holding only the old key
refuses what the new key signed; the policy printed after the rotation (both keys) accepts
the old and the new release.

Debian 12's skopeo has sigstore switched off, so the test runs skopeo 1.18 from a trixie
chroot (:mod:`support.trixie`: built with debootstrap once, cached). The images are pushed with
the host's skopeo, the release run with the ``strata`` CLI against a real ``strata serve``
(its passphrase from ``--signing-passphrase-file``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release.test_end_to_end import LATER, World, add_releng
from support.clients import require_tool
from support.server import StrataServer
from support.trixie import Run, run_skopeo, trixie_skopeo

pytestmark = [pytest.mark.server, pytest.mark.interop]


def test_trixie_skopeo_requires_strata_release_signatures(tmp_path: Path) -> None:
    require_tool("skopeo")
    chroot = trixie_skopeo()
    base = tmp_path / "srv"
    add_releng(base)
    passphrase = tmp_path / "signing-passphrase"
    passphrase.write_text("a passphrase only this test knows\n")
    with StrataServer(base, "--workers", "1", "--signing-passphrase-file",
                      str(passphrase)) as srv:
        w = World(srv, tmp_path)
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", LATER)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        first = w.build("130", "1")
        w.cli("candidate", "add", f"f25/x@{first}")
        w.cli("release", "publish")
        old_policy = w.cli("trust", "config", "f25", "--policy-only").stdout
        registries_d = w.cli("trust", "config", "f25", "--registries-d-only").stdout
        assert json.loads(old_policy)["transports"]["docker"][f"{srv.host_port}/f25"] == [
            {"type": "sigstoreSigned", "keyData": json.loads(old_policy)["transports"][
                "docker"][f"{srv.host_port}/f25"][0]["keyData"],
             "signedIdentity": {"type": "matchRepository"}}]
        assert "use-sigstore-attachments: true" in registries_d

        def copy(reference: str, policy: str) -> Run:
            return run_skopeo(chroot, [
                "--policy", "{dir}/policy.json", "--registries.d", "{dir}/registries.d",
                "copy", "--remove-signatures", "--src-tls-verify=false",
                f"docker://{srv.host_port}/{reference}", "dir:{dir}/out"],
                {"policy.json": old_policy.encode() if policy == "old" else policy.encode(),
                 "registries.d/strata.yaml": registries_d.encode()})

        for ref in ("f25/x:latest", "f25/x:130-1.f25docker", f"f25/x@{first}"):
            done = copy(ref, "old")
            assert done.returncode == 0, (ref, done.stderr)

        unsigned = w.build("131", "1")  # pushed, never released: no signature
        refused = copy(f"f25/x@{unsigned}", "old")
        assert refused.returncode != 0
        assert "A signature was required, but no signature exists" in refused.stderr, \
            refused.stderr

        w.cli("key", "rotate", "f25")
        listed = w.cli_json("key", "list", "f25")["keys"]
        assert [k["status"] for k in listed] == ["current", "retired"]
        assert w.cli("key", "show", "f25").stdout == listed[0]["public_key"]
        assert w.cli("key", "show", "f25", listed[1]["key_id"][:12]).stdout == \
            listed[1]["public_key"]
        assert "retired" in w.cli("key", "list", "f25").stdout
        second = w.build("130", "2")
        w.cli("release", "oob", "--advisory", "FEDORA-2026-1", "--reason", "CVE fix",
              f"f25/x@{second}")
        refused = copy("f25/x:latest", "old")  # now signed by the new key only
        assert refused.returncode != 0
        assert "Source image rejected: cryptographic signature verification failed" in \
            refused.stderr, refused.stderr

        new_policy = w.cli("trust", "config", "f25", "--policy-only").stdout
        [requirement] = json.loads(new_policy)["transports"]["docker"][f"{srv.host_port}/f25"]
        assert len(requirement["keyDatas"]) == 2
        for ref in ("f25/x:latest", f"f25/x@{first}", "f25/x:130-1.f25docker"):
            done = copy(ref, new_policy)
            assert done.returncode == 0, (ref, done.stderr)
        refused = copy(f"f25/x@{unsigned}", new_policy)
        assert refused.returncode != 0
        assert "A signature was required, but no signature exists" in refused.stderr, \
            refused.stderr


def test_trixie_skopeo_pulling_through_another_host_name(tmp_path: Path) -> None:
    """Signatures name the public host (``STRATA_PUBLIC_HOST``); a client reaching the registry
    under another name uses ``strata trust config --host``: each image's ``exactRepository``
    entry accepts tag and digest pulls; an image added after the policy was printed is refused
    (the namespace scope is ``reject``: ``remapIdentity`` never accepts a signature naming a
    bare repository) until it is printed again; ``matchRepository`` under the other name
    refuses the signature's identity."""
    require_tool("skopeo")
    chroot = trixie_skopeo()
    base = tmp_path / "srv"
    add_releng(base)
    with StrataServer(base, "--workers", "1",
                      env={"STRATA_SIGNING_PASSPHRASE": "another passphrase for this test",
                           "STRATA_PUBLIC_HOST": "registry.example"}) as srv:
        w = World(srv, tmp_path)
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", LATER)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        digest = w.build("130", "1")
        w.cli("candidate", "add", f"f25/x@{digest}")
        w.cli("release", "publish")
        host = srv.host_port
        remapped = w.cli("trust", "config", "f25", "--host", host, "--policy-only").stdout
        docker = json.loads(remapped)["transports"]["docker"]
        assert docker[f"{host}/f25"] == [{"type": "reject"}]
        assert docker[f"{host}/f25/x"][0]["signedIdentity"] == {
            "type": "exactRepository", "dockerRepository": "registry.example/f25/x"}
        strict = json.loads(remapped)
        strict["transports"]["docker"][f"{host}/f25/x"][0]["signedIdentity"] = {
            "type": "matchRepository"}
        registries_d = w.cli("trust", "config", "f25", "--host", host,
                             "--registries-d-only").stdout

        def copy(policy: str, reference: str = "f25/x:latest") -> Run:
            return run_skopeo(chroot, [
                "--policy", "{dir}/policy.json", "--registries.d", "{dir}/registries.d",
                "copy", "--remove-signatures", "--src-tls-verify=false",
                f"docker://{host}/{reference}", "dir:{dir}/out"],
                {"policy.json": policy.encode(),
                 "registries.d/strata.yaml": registries_d.encode()})

        for ref in ("f25/x:latest", f"f25/x@{digest}"):
            done = copy(remapped, ref)
            assert done.returncode == 0, (ref, done.stderr)
        w.cli("image", "add", "f25/later", "--reason", "added after the policy")
        later = w.build("1", "1", repo="f25/later")
        w.cli("release", "oob", "--advisory", "FEDORA-2026-2", "--reason", "new image",
              f"f25/later@{later}")
        refused = copy(remapped, "f25/later:latest")
        assert refused.returncode != 0
        assert "rejected by policy" in refused.stderr, refused.stderr
        again = w.cli("trust", "config", "f25", "--host", host, "--policy-only").stdout
        done = copy(again, "f25/later:latest")
        assert done.returncode == 0, done.stderr
        refused = copy(json.dumps(strict))
        assert refused.returncode != 0
        assert "registry.example/f25/x" in refused.stderr, refused.stderr
