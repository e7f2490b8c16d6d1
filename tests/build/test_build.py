"""``strata build`` end to end against a real server: config, layers, whiteouts, failures,
label policy, release numbers, reproducibility, git sources and the build record."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from build_support import BASE, DIST_TAG, NAMESPACE, Strata, git, labels_block, write_context

pytestmark = pytest.mark.server

MULTI_STAGE = f"""
    # syntax=docker/dockerfile:1
    ARG BASE={BASE}:1.36
    FROM $BASE AS builder
    ARG FLAVOUR=plain
    RUN mkdir -p /out && echo "built $FLAVOUR for $FGC" > /out/result
    RUN echo scratch-space > /out/tmpfile && rm /out/tmpfile

    FROM ${{BASE}}
    ARG GREETING=hi
    ENV APP=/app GREETING2=$GREETING
    {labels_block("hello")}
    WORKDIR $APP
    COPY --chown=app:staff --chmod=640 src/*.txt ./
    COPY src/ /app/srccopy/
    COPY --from=builder /out/result /app/
    ADD data.tar /opt/
    RUN rm /bin/ls && echo "$GREETING" > /app/greeting && echo "ran as $(id -u)"
    USER app
    EXPOSE 8080 9000/udp
    VOLUME /data
    STOPSIGNAL SIGTERM
    HEALTHCHECK --interval=30s --retries=2 CMD echo ok
    ONBUILD RUN echo child
    SHELL ["/bin/sh", "-ec"]
    ENTRYPOINT ["/bin/sh", "-c"]
    CMD ["echo hello from strata"]
"""


def multi_stage_context(root: Path) -> Path:
    ctx = write_context(root, MULTI_STAGE, {
        "src/a.txt": "alpha\n", "src/b.txt": "beta\n", "src/sub/c.md": "gamma\n",
        "secret/key": "do not ship\n", ".containerignore": "secret\ntarsrc\n",
        "help.md": "# hello\n\nRun it.\n", "tarsrc/x/inner": "from the tar\n"})
    with tarfile.open(ctx / "data.tar", "w") as tf:
        info = tf.gettarinfo(ctx / "tarsrc" / "x" / "inner", arcname="x/inner")
        info.uid, info.gid, info.mode = 42, 43, 0o600
        with (ctx / "tarsrc" / "x" / "inner").open("rb") as fh:
            tf.addfile(info, fh)
    return ctx


@pytest.fixture(scope="module")
def hello(strata: Strata, base_image: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    ctx = multi_stage_context(tmp_path_factory.mktemp("hello"))
    return strata.build(ctx, "--build-arg", "GREETING=bonjour", "--build-arg", "UNUSED=1")


def test_result_names_the_candidate(hello: dict[str, Any], strata: Strata) -> None:
    assert hello["nvr"] == f"hello-1-1.{DIST_TAG}"
    assert hello["repository"] == f"{NAMESPACE}/hello"
    assert hello["digest"].startswith("sha256:")
    candidates = json.loads(strata.server.request(
        "GET", f"/api/v1/candidates?repository={NAMESPACE}/hello",
        headers=strata.server.admin_headers).body)["candidates"]
    assert [(c["digest"], c["nvr"]) for c in candidates] == [(hello["digest"], hello["nvr"])]
    tags = strata.get_json(f"/v2/{NAMESPACE}/hello/tags/list")["tags"] or []
    assert tags == []  # a candidate: in the registry by digest, no tag yet


def test_search_finds_the_build_by_its_labels_and_help(hello: dict[str, Any],
                                                       strata: Strata) -> None:
    """``strata build`` sends the help file with the registration; the server reads the labels
    from the config: both are searchable (issue 15)."""
    def found(q: str) -> list[str]:
        body = strata.get_json(f"/api/v1/search?q={q}&namespace={NAMESPACE}")
        return [hit["repository"] for hit in body["results"]]
    assert f"{NAMESPACE}/hello" in found("bt+example")  # the maintainer label
    assert f"{NAMESPACE}/hello" in found("it")  # only in help.md: "Run it."
    assert f"{NAMESPACE}/hello" not in found("bonjour")  # a build argument is not indexed


def test_config_is_what_docker_records(hello: dict[str, Any], strata: Strata,
                                       base_image: dict[str, Any]) -> None:
    manifest, config = strata.image(hello["repository"], hello["digest"])
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert config["os"] == "linux"
    cfg = config["config"]
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          f"DISTTAG={DIST_TAG}", f"FGC={NAMESPACE}", "APP=/app",
                          "GREETING2=bonjour"]
    assert cfg["User"] == "app"
    assert cfg["WorkingDir"] == "/app"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "9000/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Cmd"] == ["echo hello from strata"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 30_000_000_000,
                                  "Retries": 2}
    assert cfg["OnBuild"] == ["RUN echo child"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Labels"] == {
        "name": f"{NAMESPACE}/hello", "version": "1", "release": f"1.{DIST_TAG}",
        "summary": "test image hello", "maintainer": "Build Tests <bt@example.com>",
        "usage": "podman run hello"}
    history = config["history"]
    assert len([h for h in history if not h.get("empty_layer")]) == len(manifest["layers"])
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    created_by = [h["created_by"] for h in history[1:]]
    assert created_by[:3] == ["ENV APP=/app GREETING2=bonjour",
                              created_by[1], "WORKDIR /app"]
    assert created_by[1].startswith("LABEL name=bt/hello version=1")
    assert "RUN |1 GREETING=bonjour /bin/sh -c rm /bin/ls" in created_by[7]
    assert created_by[-1] == "COPY help.md /help.md # strata: help file"
    assert manifest["layers"][0]["digest"] == base_image["layer"]["digest"]
    assert manifest["annotations"] == {
        "org.opencontainers.image.base.digest": base_image["digest"],
        "org.opencontainers.image.base.name": f"{BASE}:1.36"}


def test_layers_hold_each_step(hello: dict[str, Any], strata: Strata, tmp_path: Path) -> None:
    manifest, _ = strata.image(hello["repository"], hello["digest"])
    layers = [strata.layer_members(hello["repository"], layer["digest"], tmp_path)
              for layer in manifest["layers"][1:]]
    workdir, txt, srccopy, from_stage, add, run, helpdoc = layers
    assert sorted(workdir) == ["app"]
    assert sorted(txt) == ["app", "app/a.txt", "app/b.txt"]
    for name in ("app/a.txt", "app/b.txt"):
        assert (txt[name].uid, txt[name].gid, txt[name].mode) == (1000, 50, 0o640)
    assert sorted(srccopy) == ["app", "app/srccopy", "app/srccopy/a.txt", "app/srccopy/b.txt",
                               "app/srccopy/sub", "app/srccopy/sub/c.md"]
    assert (srccopy["app/srccopy/a.txt"].uid, srccopy["app/srccopy/a.txt"].mode) == (0, 0o644)
    assert sorted(from_stage) == ["app", "app/result"]
    assert sorted(add) == ["opt", "opt/x", "opt/x/inner"]
    inner = add["opt/x/inner"]
    assert (inner.uid, inner.gid, inner.mode) == (42, 43, 0o600)
    assert "bin/.wh.ls" in run and run["bin/.wh.ls"].size == 0  # the whiteout of /bin/ls
    assert "app/greeting" in run
    assert not any("proc" in name or name.startswith("dev") for name in run)
    assert sorted(helpdoc) == ["help.md"]
    assert all(member.mtime == 0 for layer in layers for member in layer.values())


def _record(strata: Strata, built: dict[str, Any]) -> dict[str, Any]:
    referrers = strata.get_json(f"/v2/{built['repository']}/referrers/{built['digest']}")
    (entry,) = [m for m in referrers["manifests"]
                if m.get("artifactType") == "application/vnd.strata.build-record.v1+json"]
    assert entry["digest"] == built["record"]
    manifest = strata.get_json(f"/v2/{built['repository']}/manifests/{entry['digest']}")
    blob = strata.get(f"/v2/{built['repository']}/blobs/{manifest['layers'][0]['digest']}")
    record: dict[str, Any] = json.loads(blob)
    return record


def test_build_record(hello: dict[str, Any], strata: Strata,
                      base_image: dict[str, Any]) -> None:
    record = _record(strata, hello)
    assert record["image"]["digest"] == hello["digest"]
    assert record["image"]["nvr"] == hello["nvr"]
    assert record["base"] == {"reference": f"{BASE}:1.36", "digest": base_image["digest"]}
    assert record["source"]["containerfile"] == "Containerfile"
    assert record["source"]["containerfile_digest"].startswith("sha256:")
    assert record["source"]["url"].startswith("file://")
    assert record["duration_seconds"] > 0
    outputs = " ".join(step["output"] for step in record["steps"])
    assert "ran as 0" in outputs
    assert record["packages"] == []  # busybox has no package database
    assert record["network"] == "none"
    assert record["inputs"] is None  # not a git checkout: nothing to reuse it by


def test_failing_run_exits_3_and_names_its_exit_code(strata: Strata,
                                                     base_image: dict[str, Any],
                                                     tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("failing")}
        RUN echo before-the-failure && echo on-stderr >&2 && exit 7
        RUN echo never
    """)
    result = strata("build", str(ctx))
    assert result.exit_code == 3  # "a build step failed": not click's usage error 2, not 1
    assert "before-the-failure" in result.stderr and "on-stderr" in result.stderr
    assert "line 3: RUN failed with exit code 7" in result.stderr
    assert "never" not in result.stderr
    quiet = strata("build", str(ctx), "--json")
    assert quiet.exit_code == 3 and "before-the-failure" in quiet.stderr
    usage = strata("build", str(ctx), "--no-such-option")
    assert usage.exit_code == 2


@pytest.mark.parametrize(("text", "line", "message"), [
    ("RUN --mount=type=cache,target=/x true", 3, "RUN --mount is not supported"),
    ("RUN <<EOF\necho\nEOF", 3, "heredocs"),
    ("FROBNICATE x", 3, "unknown instruction FROBNICATE"),
    ("COPY --link a /b", 3, "COPY --link is not supported"),
])
def test_unsupported_syntax_names_the_line(strata: Strata, tmp_path: Path, text: str,
                                           line: int, message: str) -> None:
    ctx = write_context(tmp_path, f"FROM {BASE}:1.36\n{labels_block('bad')}\n{text}\n")
    result = strata("build", str(ctx))
    assert result.exit_code == 1
    assert f"line {line}: " in result.stderr and message in result.stderr


def test_label_policy_is_reported_before_anything_is_built(strata: Strata, tmp_path: Path,
                                                           base_image: dict[str, Any]) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        LABEL name="$FGC/unlabelled" version="1.0" release="99"
        RUN echo should-not-run
    """)
    result = strata("build", str(ctx))
    assert result.exit_code == 2
    err = result.stderr
    assert "label policy (Fedora container guidelines): 3 problem(s)" in err
    assert "missing label 'summary'" in err
    assert "missing label 'maintainer' or 'com.redhat.component'" in err
    assert "missing label 'usage' or 'run'" in err
    assert "no help.md or README.md" in err
    assert "should-not-run" not in err
    resp = strata.server.request("GET", f"/v2/{NAMESPACE}/unlabelled/tags/list",
                                 headers=strata.server.admin_headers)
    assert resp.status == 404


def test_inherited_labels_do_not_satisfy_the_policy(strata: Strata, tmp_path: Path,
                                                    base_image: dict[str, Any]) -> None:
    ctx = write_context(tmp_path, f"FROM {BASE}:1.36\nLABEL name=bt/inherits version=2\n")
    result = strata("build", str(ctx))  # the base's summary label is the base's
    assert result.exit_code == 2 and "missing label 'summary'" in result.stderr


def test_rebuild_takes_the_next_release(strata: Strata, base_image: dict[str, Any],
                                        tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"FROM {BASE}:1.36\n{labels_block('again', '3.1')}\n"
                        "RUN echo one > /one\n", {"README.md": "again\n"})
    first = strata.build(ctx)
    second = strata.build(ctx)
    assert (first["release"], second["release"]) == (f"1.{DIST_TAG}", f"2.{DIST_TAG}")
    assert second["nvr"] == f"again-3.1-2.{DIST_TAG}"
    assert first["digest"] != second["digest"]  # only the release label differs


def test_verify_proves_two_builds_are_identical(strata: Strata, base_image: dict[str, Any],
                                                tmp_path: Path) -> None:
    ctx = multi_stage_context(tmp_path / "ctx")
    (ctx / "Containerfile").write_text(
        (ctx / "Containerfile").read_text().replace('name="$FGC/hello"', 'name="$FGC/twice"'))
    result = strata.build(ctx, "--verify", "--build-arg", "GREETING=x")
    assert result["verified"] is True
    assert result["nvr"] == f"twice-1-1.{DIST_TAG}"


def test_verify_catches_an_unreproducible_step(strata: Strata, base_image: dict[str, Any],
                                               tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("random")}
        RUN head -c 32 /dev/urandom > /noise
    """)
    result = strata("build", str(ctx), "--verify")
    assert result.exit_code == 1
    assert "not reproducible" in result.stderr and "layer 1: diff_id" in result.stderr


def test_build_from_a_git_url_uses_the_commit_time(strata: Strata, base_image: dict[str, Any],
                                                   tmp_path: Path) -> None:
    repo = write_context(tmp_path / "repo", f"""
        FROM {BASE}:1.36
        {labels_block("fromgit")}
        COPY app.sh /usr/local/bin/app.sh
        RUN mkdir -p /var/lib/dpkg && printf 'Package: fake\\nStatus: install ok installed\\n\
Version: 1.0-1\\nArchitecture: amd64\\n' > /var/lib/dpkg/status
        CMD ["/usr/local/bin/app.sh"]
    """, {"app.sh": "#!/bin/sh\necho app\n", "help.md": "help\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    when = {"GIT_AUTHOR_DATE": "2021-02-03T04:05:06Z", "GIT_COMMITTER_DATE":
            "2021-02-03T04:05:06Z", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    git(repo, "commit", "-q", "-m", "one", env=when)
    commit = git(repo, "rev-parse", "HEAD")
    (repo / "app.sh").write_text("#!/bin/sh\necho uncommitted\n")  # not in the commit
    built = strata.build(f"file://{repo}", "--ref", "main")
    assert built["source"]["commit"] == commit
    assert built["source"]["url"] == f"file://{repo}"
    _, config = strata.image(built["repository"], built["digest"])
    assert config["created"] == "2021-02-03T04:05:06Z"
    assert config["config"]["Labels"]["vcs-ref"] == commit
    record = _record(strata, built)
    assert record["source_date_epoch"] == 1612325106
    assert record["packages"] == [{"name": "fake", "version": "1.0-1", "arch": "amd64",
                                   "type": "deb"}]


def test_base_import(strata: Strata, base_image: dict[str, Any]) -> None:
    assert base_image["nvr"] == f"{BASE}-1.36-1.{DIST_TAG}"
    assert base_image["repository"] == BASE and base_image["namespace"] == NAMESPACE
    assert base_image["candidate"]["status"] == "candidate"  # as imported; then released
    manifest, config = strata.image(BASE, base_image["digest"])
    assert len(manifest["layers"]) == 1
    assert config["config"]["Labels"] == {
        "name": BASE, "version": "1.36", "release": f"1.{DIST_TAG}",
        "summary": "busybox for the build tests"}
    assert f"DISTTAG={DIST_TAG}" in config["config"]["Env"]
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert f"FGC={NAMESPACE}" in config["config"]["Env"]
    tags = strata.get_json(f"/v2/{BASE}/tags/list")["tags"]  # given by the release
    signatures = [tag for tag in tags if tag.startswith("sha256-") and tag.endswith(".sig")]
    assert signatures  # the release signs what it publishes (sha256-<hex>.sig tags)
    assert sorted(set(tags) - set(signatures)) == sorted([f"1.36-1.{DIST_TAG}", "1.36",
                                                           "latest"])
    image = strata.json("image", "show", BASE)
    assert image["namespace"] == NAMESPACE and image["repository"] == BASE
    assert {t["tag"]: t["nvr"] for t in image["tags"]}["latest"] == base_image["nvr"]
    history = strata.json("history", f"{BASE}:latest")
    assert [e["release"] for e in history["events"]] == [base_image["released_in"]]
    assert strata.json("namespace", "list")["namespaces"][0]["base_image"] == BASE
