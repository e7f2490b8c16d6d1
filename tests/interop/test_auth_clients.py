"""Token authentication as the real clients do it: skopeo ``--creds``/``--src-creds``/
``--dest-creds``, ``podman login``/``logout``, buildah ``--creds``, oras-py ``login``, and a
robot account made with ``strata robot add``. The clients here start anonymous (no auth file
entry), so every write needs the credentials given."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clients import Containers, OciLayout, require_tool
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.interop


@pytest.fixture
def anonymous(tmp_path: Path, registry: StrataServer) -> Iterator[Containers]:
    env = Containers(tmp_path / "anonymous", registry.host_port)
    yield env
    env.cleanup()


def refused(proc: subprocess.CompletedProcess[str]) -> bool:
    text = proc.stderr.lower()
    return proc.returncode != 0 and ("denied" in text or "unauthorized" in text
                                     or "authentication required" in text)


def test_skopeo_creds_flags(anonymous: Containers, registry: StrataServer,
                            busybox_layout: OciLayout) -> None:
    host, creds = registry.host_port, registry.admin_creds
    target = f"docker://{host}/auth/skopeo:v1"
    assert refused(anonymous.skopeo("copy", busybox_layout.ref, target, check=False))
    assert refused(anonymous.skopeo("copy", "--dest-creds", f"{registry.admin_user}:wrong-pw",
                                    busybox_layout.ref, target, check=False))
    anonymous.skopeo("copy", "--dest-creds", creds, busybox_layout.ref, target)
    # Pulls are public; credentials work for them too.
    digest = json.loads(anonymous.skopeo("inspect", target).stdout)["Digest"]
    assert digest == busybox_layout.manifest_digest
    assert json.loads(anonymous.skopeo("inspect", "--creds", creds, target).stdout)["Digest"] \
        == digest
    # Registry to registry, with a cross-repository mount: both sides authenticate.
    copy = f"docker://{host}/auth/skopeo-copy:v1"
    anonymous.skopeo("copy", "--src-creds", creds, "--dest-creds", creds, target, copy)
    assert json.loads(anonymous.skopeo("inspect", copy).stdout)["Digest"] == digest
    # Deleting needs releng or admin.
    assert refused(anonymous.skopeo("delete", copy, check=False))
    anonymous.skopeo("delete", "--creds", creds, copy)
    assert anonymous.skopeo("inspect", copy, check=False).returncode != 0


def test_podman_login_push_logout(anonymous: Containers, registry: StrataServer,
                                  busybox_layout: OciLayout) -> None:
    host = registry.host_port
    image_id = anonymous.podman("pull", busybox_layout.ref).stdout.split()[-1]
    local = f"{host}/auth/podman:v1"
    anonymous.podman("tag", image_id, local)
    assert refused(anonymous.podman("push", local, check=False))
    bad = anonymous.podman("login", "--username", registry.admin_user, "--password",
                           "wrong-password", host, check=False)
    assert bad.returncode != 0
    assert host not in json.loads(anonymous.auth_file.read_text()).get("auths", {})
    out = anonymous.podman("login", "--username", registry.admin_user, "--password",
                           registry.admin_password, host).stdout
    assert "Login Succeeded" in out
    assert host in json.loads(anonymous.auth_file.read_text())["auths"]
    anonymous.podman("push", local)
    assert json.loads(anonymous.skopeo("inspect", f"docker://{local}").stdout)["Name"] == \
        f"{host}/auth/podman"
    anonymous.podman("logout", host)
    anonymous.podman("tag", image_id, f"{host}/auth/podman:v2")
    assert refused(anonymous.podman("push", f"{host}/auth/podman:v2", check=False))


def test_buildah_push_with_creds(anonymous: Containers, registry: StrataServer,
                                 busybox_layout: OciLayout) -> None:
    require_tool("buildah")
    image_id = anonymous.buildah("pull", busybox_layout.ref).stdout.split()[-1]
    target = f"docker://{registry.host_port}/auth/buildah:v1"
    assert refused(anonymous.buildah("push", image_id, target, check=False))
    anonymous.buildah("push", "--creds", registry.admin_creds, image_id, target)
    info = json.loads(anonymous.skopeo("inspect", target).stdout)
    assert info["Labels"]["name"] == "busybox"


def test_robot_account_pushes_only_its_image(anonymous: Containers, registry: StrataServer,
                                             busybox_layout: OciLayout) -> None:
    proc = subprocess.run([*strata_command(), "robot", "add", "interop-ci", "--image",
                           "auth/robot", "--data", str(registry.data_dir)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    creds = f"interop-ci:{proc.stdout.strip()}"
    host = registry.host_port
    anonymous.skopeo("copy", "--dest-creds", creds, busybox_layout.ref,
                     f"docker://{host}/auth/robot:v1")
    assert refused(anonymous.skopeo("copy", "--dest-creds", creds, busybox_layout.ref,
                                    f"docker://{host}/auth/not-the-robots:v1", check=False))
    # A maintainer's robot cannot delete.
    assert refused(anonymous.skopeo("delete", "--creds", creds,
                                    f"docker://{host}/auth/robot:v1", check=False))
    proc = subprocess.run([*strata_command(), "robot", "revoke", "interop-ci", "--data",
                           str(registry.data_dir)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert refused(anonymous.skopeo("copy", "--dest-creds", creds, busybox_layout.ref,
                                    f"docker://{host}/auth/robot:v2", check=False))


def test_oras_login_push_pull(registry: StrataServer, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import oras.client

    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / "notes.txt"
    artifact.write_text("pushed with oras through token auth\n")
    host = registry.host_port

    anonymous = oras.client.OrasClient(hostname=host, insecure=True)
    with pytest.raises(Exception):  # noqa: B017  (oras-py raises ValueError or HTTPError)
        response = anonymous.push(files=[artifact.name], target=f"{host}/auth/oras:v1")
        response.raise_for_status()

    client = oras.client.OrasClient(hostname=host, insecure=True)
    client.login(username=registry.admin_user, password=registry.admin_password, hostname=host,
                 config_path=str(tmp_path / "docker-config.json"))
    response = client.push(files=[artifact.name], target=f"{host}/auth/oras:v1")
    assert response.status_code == 201, response.text
    # The same client, holding a token for auth/oras, pushes to another repository: it is
    # refused with 403 insufficient_scope and fetches a token for the new scope.
    response = client.push(files=[artifact.name], target=f"{host}/auth/oras-two:v1")
    assert response.status_code == 201, response.text

    out = tmp_path / "pulled"
    files = anonymous.pull(target=f"{host}/auth/oras:v1", outdir=str(out))
    assert [Path(f).read_text() for f in files] == [artifact.read_text()]
