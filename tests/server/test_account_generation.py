"""Account changes made offline (``strata user …`` / ``strata robot …`` against the data dir or
the database) end earlier tokens and logins at once on every worker of a running
``strata serve --workers 2``; the token realm is the ``--public-url`` whatever ``Host`` says;
``strata release plan`` survives a namespace anchored at 9999-12-31."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server

PUBLIC = "http://registry.example:5000"
ROUNDS = 16  # a new connection each: spread over both workers (SO_REUSEPORT)
PASSWORDS = {"maint": "maintainer-password", "rel": "releng-password"}


def strata(data: Path, database_args: list[str], *args: str, stdin: str = "") -> str:
    if not data.exists():  # offline commands need strata data: make it as an operator would
        subprocess.run([*strata_command(), "init", "--data", str(data), *database_args],
                       capture_output=True, timeout=60, check=True)
    proc = subprocess.run([*strata_command(), *args, "--data", str(data), *database_args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(server: StrataServer, creds: dict[str, str], *scopes: str) -> str:
    query = "&".join(f"scope={s}" for s in scopes)
    resp = server.request("GET", f"/auth/token?service=strata&{query}", headers=creds)
    assert resp.status == 200, resp.body
    value: str = json.loads(resp.body)["token"]
    return value


def statuses(server: StrataServer, method: str, path: str, headers: dict[str, str],
             rounds: int = ROUNDS) -> set[int]:
    return {server.request(method, path, headers=headers).status for _ in range(rounds)}


PULL = "/v2/f25/a/tags/list"  # public: only the credentials themselves can make it 401
DELIVERIES = "/api/v1/webhooks/deliveries"  # releng only


def test_offline_account_changes_end_tokens_at_once_on_every_worker(
        tmp_path: Path, database_args: list[str]) -> None:
    data = tmp_path / "data"
    for name, role in (("maint", ["--role", "maintainer", "--image", "f25/a"]),
                       ("rel", ["--role", "releng"])):
        strata(data, database_args, "user", "add", name, *role, "--password-stdin",
               stdin=PASSWORDS[name] + "\n")
    with StrataServer(tmp_path, "--workers", "2", "--public-url", PUBLIC,
                      *database_args) as server:
        maint, rel = basic("maint", PASSWORDS["maint"]), basic("rel", PASSWORDS["rel"])
        maint_token = bearer(token(server, maint, "repository:f25/a:pull,push"))
        rel_token = bearer(token(server, rel, "strata:api:read"))
        # Warm every worker: cached logins and accounts in both.
        assert statuses(server, "GET", PULL, maint) == {404}
        assert statuses(server, "GET", PULL, maint_token) == {404}
        assert statuses(server, "GET", DELIVERIES, rel) == {200}
        assert statuses(server, "GET", DELIVERIES, rel_token) == {200}

        # A password change: the old token and the old password end at once.
        strata(data, database_args, "user", "passwd", "maint", "--password-stdin",
               stdin="a-new-maintainer-password\n")
        assert statuses(server, "GET", PULL, maint_token) == {401}
        assert statuses(server, "GET", PULL, basic("maint", "a-new-maintainer-password")) == {404}
        assert statuses(server, "GET", PULL, maint, rounds=10) == {401}

        # A role change: the releng token is over; Basic gets the new role's answer.
        strata(data, database_args, "user", "roles", "rel", "--role", "reviewer")
        assert statuses(server, "GET", DELIVERIES, rel_token) == {401}
        assert statuses(server, "GET", DELIVERIES, rel) == {403}

        # Disable: Basic logins fail at once on the JSON API and on /v2/.
        strata(data, database_args, "user", "disable", "rel")
        # (5 + 5 failed logins: within the burst of 10, so none is merely throttled)
        assert statuses(server, "GET", DELIVERIES, rel, rounds=5) == {401}
        assert statuses(server, "GET", PULL, rel, rounds=5) == {401}

        # A revoked robot's token does not come back with a new robot of the same name.
        secret = strata(data, database_args, "robot", "add", "bot", "--role", "maintainer",
                        "--image", "f25/a").strip()
        bot_token = bearer(token(server, basic("bot", secret), "repository:f25/a:pull,push",
                                 "strata:api:*"))
        assert statuses(server, "GET", PULL, bot_token) == {404}
        strata(data, database_args, "robot", "revoke", "bot")
        assert statuses(server, "GET", PULL, bot_token) == {401}
        strata(data, database_args, "robot", "add", "bot", "--role", "releng")
        assert statuses(server, "GET", PULL, bot_token) == {401}
        assert statuses(server, "GET", DELIVERIES, bot_token) == {401}
        assert statuses(server, "POST", "/v2/f25/a/blobs/uploads/", bot_token) == {401}


def test_the_realm_is_the_public_url_whatever_the_host(tmp_path: Path) -> None:
    with StrataServer(tmp_path, "--public-url", PUBLIC) as server:
        for host in ("evil.example", server.host_port):
            resp = server.request("POST", "/v2/f25/a/blobs/uploads/", headers={"Host": host})
            assert resp.status == 401
            realm = re.search(r'realm="([^"]*)"', resp.headers["www-authenticate"])
            assert realm is not None and realm.group(1) == f"{PUBLIC}/auth/token"
    assert f"public URL {PUBLIC}" in server.log_text()


def test_the_default_public_url_is_the_listen_address(tmp_path: Path) -> None:
    with StrataServer(tmp_path) as server:
        resp = server.request("GET", "/v2/", headers={"Host": "evil.example"})
        realm = re.search(r'realm="([^"]*)"', resp.headers["www-authenticate"])
        assert realm is not None and realm.group(1) == f"{server.url}/auth/token"


def test_a_bad_public_url_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([*strata_command(), "serve", "--data", str(tmp_path / "d"),
                           "--public-url", "registry.example/x"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--public-url" in proc.stderr


def test_release_plan_survives_a_far_anchor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    strata(data, [], "user", "add", "rel", "--role", "releng", "--password-stdin",
           stdin=PASSWORDS["rel"] + "\n")
    with StrataServer(tmp_path, "--workers", "2") as server:
        env = {"STRATA_URL": server.url, "STRATA_USER": "rel",
               "STRATA_PASSWORD": PASSWORDS["rel"]}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            import os
            return subprocess.run([*strata_command(), *args], capture_output=True, text=True,
                                  env={**os.environ, **env}, timeout=60, check=False)

        refused = cli("namespace", "add", "f25", "--dist-tag", "f25docker",
                      "--anchor", "9999-12-31")
        assert refused.returncode != 0 and "anchor" in refused.stderr, refused
        assert cli("namespace", "add", "f25", "--dist-tag", "f25docker").returncode == 0
        with sqlite3.connect(data / "strata.db") as db:  # as an older server let it in
            db.execute("UPDATE namespaces SET anchor = '9999-12-31', interval_days = 3650")
        plan = cli("release", "plan", "--json")
        assert plan.returncode == 0, plan.stderr
        assert json.loads(plan.stdout)["plans"][0]["next"][0]["date"] == "9999-12-31"
