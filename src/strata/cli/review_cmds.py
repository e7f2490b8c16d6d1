"""``strata review list|show|comment|approve|reject``: review requests of new images (opened
by ``strata image submit``), over a running server's ``/api/v1/reviews``."""

from __future__ import annotations

from typing import Any

import click

from strata.cli.common import emit, server_options
from strata.cli.release_cmds import run_api

_MARK = {True: "ok  ", False: "FAIL", None: "--  "}


def review_text(d: dict[str, Any]) -> str:
    source = d.get("source") or {}
    lines = [f"review {d['id']}: {d['repository']} ({d['status']}), submitted by "
             f"{d['submitter']}, source {source.get('url')}"
             + (f"#{source['branch']}" if source.get("branch") else "")]
    if d.get("decided_by"):
        lines.append(f"  {d['status']} by {d['decided_by']}")
    lines.append("  checks:")
    lines += [f"    {_MARK.get(c.get('ok'), '?   ')} {c.get('title') or c['name']}: "
              f"{c.get('detail') or ''}" for c in d.get("checks") or []]
    for comment in d.get("comments") or []:
        lines.append(f"  [{comment['kind']}] {comment['author']}: {comment['text']}")
    return "\n".join(lines)


def _id(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise click.BadParameter(f"{value!r} is not a review request id")
    return int(value)


@click.group()
def review() -> None:
    """Review requests of new images (opened by 'strata image submit')."""


@review.command("list")
@server_options
@click.option("--status", type=click.Choice(["open", "approved", "rejected"]), default=None)
@click.option("--namespace", default=None)
def review_list(url: str, user: str | None, password: str | None, as_json: bool,
                status: str | None, namespace: str | None) -> None:
    """List review requests (newest first)."""
    data = run_api(url, user, password, lambda c: c.reviews(status, namespace))

    def text(d: dict[str, Any]) -> str:
        rows = []
        for r in d["reviews"]:
            checks = r.get("checks") or []
            ok = sum(1 for c in checks if c.get("ok") is True)
            rows.append(f"{r['id']}\t{r['repository']}\t{r['status']}\t{r['submitter']}\t"
                        f"checks {ok}/{len(checks)}")
        return "\n".join(rows)
    emit(data, as_json, text)


@review.command("show")
@server_options
@click.argument("request_id")
def review_show(url: str, user: str | None, password: str | None, as_json: bool,
                request_id: str) -> None:
    """Show review request ID: its source, automated checks and comments."""
    number = _id(request_id)
    emit(run_api(url, user, password, lambda c: c.review(number)), as_json, review_text)


def _action(action: str, doc: str) -> click.Command:
    @server_options
    @click.argument("request_id")
    @click.option("--comment", required=True, help="The comment (recorded on the request).")
    def command(url: str, user: str | None, password: str | None, as_json: bool,
                request_id: str, comment: str) -> None:
        number = _id(request_id)
        data = run_api(url, user, password,
                       lambda c: c.review_action(number, action, comment))
        emit(data, as_json, review_text)
    command.__doc__ = doc
    return click.command(action)(command)


review.add_command(_action("comment", "Comment on review request ID (reviewer, releng, admin "
                                      "or its submitter)."))
review.add_command(_action("approve", "Approve review request ID (reviewer, releng, admin; not "
                                      "its submitter): the image becomes active with its "
                                      "submitter as maintainer."))
review.add_command(_action("reject", "Reject review request ID (reviewer, releng, admin; not "
                                     "its submitter)."))
