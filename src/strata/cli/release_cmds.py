"""Release commands over a running server's ``/api/v1``: ``strata namespace``, ``image``,
``candidate``, ``release``, ``stream``, ``history`` and ``webhook``.

Every command takes ``--url`` / ``$STRATA_URL``, ``$STRATA_USER`` / ``$STRATA_PASSWORD`` and
``--json``; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import click

from strata.cli.common import emit, run_remote, server_options
from strata.cli.image_history import image_history, timeline_text
from strata.client.api import ApiClient

T = TypeVar("T")


def run_api(url: str, user: str | None, password: str | None,
            fn: Callable[[ApiClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with aiohttp.ClientSession() as session:
            return await fn(ApiClient(url, session, user=user, password=password))
    return run_remote(url, go)


def _short(digest: str | None) -> str:
    return "-" if digest is None else digest.split(":", 1)[-1][:12]


def _tag_of(nvr: str | None) -> str:
    if nvr is None:
        return "(none)"
    parts = nvr.rsplit("-", 2)
    return f"{parts[1]}-{parts[2]}" if len(parts) == 3 else nvr


# -- namespace --------------------------------------------------------------------------------
@click.group()
def namespace() -> None:
    """Namespaces: the distribution releases images are built for (f25 -> f25docker)."""


@namespace.command("add")
@server_options
@click.argument("name")
@click.option("--dist-tag", required=True, help="Suffix of every release label (f25docker).")
@click.option("--interval-days", type=click.IntRange(1, 3650), default=14, show_default=True,
              help="Days between scheduled releases.")
@click.option("--anchor", default=None, help="First scheduled date (YYYY-MM-DD; default: "
              "one interval from today).")
@click.option("--base-image", default=None, help="The base image reference, if any.")
@click.option("--rebuild-days-before", type=click.IntRange(0, 365), default=None,
              help="Rebuild every active image N days before each scheduled release.")
def namespace_add(url: str, user: str | None, password: str | None, as_json: bool, name: str,
                  dist_tag: str, interval_days: int, anchor: str | None,
                  base_image: str | None, rebuild_days_before: int | None) -> None:
    """Add namespace NAME."""
    data = run_api(url, user, password, lambda c: c.add_namespace(
        name, dist_tag, interval_days=interval_days, anchor=anchor, base_image=base_image,
        rebuild_days_before=rebuild_days_before))
    emit(data, as_json, _namespace_text)


def _namespace_text(d: dict[str, Any]) -> str:
    text = (f"namespace {d['name']}: dist tag {d['dist_tag']}, a release every "
            f"{d['interval_days']} days from {d['anchor']}")
    if d.get("rebuild_days_before") is not None:
        text += f"; every active image rebuilt {d['rebuild_days_before']} days before each"
    return text


@namespace.command("set")
@server_options
@click.argument("name")
@click.option("--rebuild-days-before", default=None, metavar="N|none",
              help="Rebuild every active image N days before each scheduled release "
              "('none': never).")
@click.option("--base-image", default=None, metavar="REPOSITORY|none",
              help="The namespace's base image ('none': unset).")
def namespace_set(url: str, user: str | None, password: str | None, as_json: bool, name: str,
                  rebuild_days_before: str | None, base_image: str | None) -> None:
    """Change settings of namespace NAME."""
    changes: dict[str, Any] = {}
    if rebuild_days_before is not None:
        if rebuild_days_before == "none":
            changes["rebuild_days_before"] = None
        elif rebuild_days_before.isdigit() and int(rebuild_days_before) <= 365:
            changes["rebuild_days_before"] = int(rebuild_days_before)
        else:
            raise click.BadParameter("0 to 365, or 'none'", param_hint="--rebuild-days-before")
    if base_image is not None:
        changes["base_image"] = None if base_image == "none" else base_image
    if not changes:
        raise click.UsageError("nothing to set (--rebuild-days-before, --base-image)")
    data = run_api(url, user, password, lambda c: c.update_namespace(name, changes))
    emit(data, as_json, _namespace_text)


@namespace.command("list")
@server_options
def namespace_list(url: str, user: str | None, password: str | None, as_json: bool) -> None:
    """List namespaces."""
    data = run_api(url, user, password, lambda c: c.namespaces())
    emit(data, as_json, lambda d: "\n".join(
        f"{n['name']}\t{n['dist_tag']}\tevery {n['interval_days']}d from {n['anchor']}"
        for n in d["namespaces"]))


# -- image ------------------------------------------------------------------------------------
@click.group()
def image() -> None:
    """Images (components): <namespace>/<name> or a root <name> (a base), with maintainers,
    source and status."""


@image.command("add")
@server_options
@click.argument("repository")
@click.option("--maintainer", "maintainers", multiple=True, help="Maintainer (repeatable).")
@click.option("--source-url", default=None, help="Git URL of the image's source.")
@click.option("--source-branch", default=None, help="Branch of the source.")
@click.option("--status", type=click.Choice(["in-review", "active", "retired"]),
              default="active", show_default=True)
@click.option("--namespace", default=None, help="Namespace of a root repository (fedora); "
              "default: the namespace of its name.")
@click.option("--summary", default=None, help="One-line description.")
@click.option("--reason", default=None, help="Why it is registered without a review "
              "(recorded in the image's events).")
def image_add(url: str, user: str | None, password: str | None, as_json: bool, repository: str,
              maintainers: tuple[str, ...], source_url: str | None, source_branch: str | None,
              status: str, namespace: str | None, summary: str | None,
              reason: str | None) -> None:
    """Register image REPOSITORY (<namespace>/<name>, or a root <name> with --namespace)
    directly, without a review (releng/admin): a recorded forced registration. New images of
    maintainers go through 'strata image submit'."""
    data = run_api(url, user, password, lambda c: c.add_image(
        repository, maintainers=maintainers, source_url=source_url,
        source_branch=source_branch, status=status, namespace=namespace, summary=summary,
        reason=reason))
    emit(data, as_json, lambda d: f"image {d['repository']} ({d['status']}), maintainers: "
         f"{', '.join(d['maintainers']) or '-'}")


def _stale_line(i: dict[str, Any]) -> str:
    base = i["base"]
    return (f"{i['repository']}\t{i['nvr']}\tbuilt on {base['repository']}:{base['tag']} "
            f"{base['built_on_nvr'] or _short(base['built_on'])}, now "
            f"{base['now_nvr'] or _short(base['now'])}")


def _image_line(d: dict[str, Any]) -> str:
    source = d.get("source") or {}
    return (f"image {d['repository']} ({d['status']}), maintainers: "
            f"{', '.join(d['maintainers']) or '-'}, source: {source.get('url') or '-'}"
            f"{'#' + source['branch'] if source.get('branch') else ''}"
            f"{', summary: ' + d['summary'] if d.get('summary') else ''}")


@image.command("set")
@server_options
@click.argument("repository")
@click.option("--source-url", default=None, help="Git URL of the image's source (must pass "
              "the server's --source-allow).")
@click.option("--source-branch", default=None, help="Branch of the source (one per namespace).")
@click.option("--summary", default=None, help="One-line description.")
@click.option("--status", type=click.Choice(["in-review", "active", "retired"]), default=None,
              help="releng/admin only.")
def image_set(url: str, user: str | None, password: str | None, as_json: bool, repository: str,
              source_url: str | None, source_branch: str | None, summary: str | None,
              status: str | None) -> None:
    """Change the source, summary or status of image REPOSITORY.

    Maintainers of the image may change its source and summary; releng and admin everything."""
    changes = {k: v for k, v in (("source_url", source_url), ("source_branch", source_branch),
                                 ("summary", summary), ("status", status)) if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give --source-url, --source-branch, "
                               "--summary or --status")
    data = run_api(url, user, password, lambda c: c.set_image(repository, changes))
    emit(data, as_json, _image_line)


@image.command("maintainers")
@server_options
@click.argument("repository")
@click.option("--add", "add", default=None, metavar="USER", help="Add a maintainer.")
@click.option("--remove", "remove", default=None, metavar="USER", help="Remove a maintainer.")
def image_maintainers(url: str, user: str | None, password: str | None, as_json: bool,
                      repository: str, add: str | None, remove: str | None) -> None:
    """Add or remove a maintainer of image REPOSITORY (releng/admin). The account gets (or
    loses) the maintainer grant on the image; its earlier tokens end."""
    if (add is None) == (remove is None):
        raise click.UsageError("give exactly one of --add USER or --remove USER")
    data = run_api(url, user, password, lambda c: c.image_maintainers(repository, add=add,
                                                                      remove=remove))
    emit(data, as_json, _image_line)


@image.command("list")
@server_options
@click.option("--namespace", default=None)
@click.option("--stale", is_flag=True, help="Only active images whose base moved since their "
              "latest build (its stream tag points to another build now).")
def image_list(url: str, user: str | None, password: str | None, as_json: bool,
               namespace: str | None, stale: bool) -> None:
    """List images."""
    data = run_api(url, user, password, lambda c: c.images(namespace, stale=stale))
    if stale:
        emit(data, as_json, lambda d: "\n".join(_stale_line(i) for i in d["images"])
             or "no stale images")
        return
    emit(data, as_json, lambda d: "\n".join(f"{i['repository']}\t{i['status']}"
                                            for i in d["images"]))


@image.command("show")
@server_options
@click.argument("repository")
def image_show(url: str, user: str | None, password: str | None, as_json: bool,
               repository: str) -> None:
    """Show an image, its streams and its tags."""
    data = run_api(url, user, password, lambda c: c.image(repository))

    def text(d: dict[str, Any]) -> str:
        lines = [f"{d['repository']} ({d['status']})", "  " + _image_line(d)]
        lines += [f"  stream {s['version']}" + (" (end-of-life)" if s["eol"] else "")
                  for s in d["streams"]]
        lines += [f"  {t['tag']}\t{_short(t['digest'])}\t{t['nvr'] or ''}" for t in d["tags"]]
        return "\n".join(lines)
    emit(data, as_json, text)


@image.command("submit")
@server_options
@click.argument("repository")
@click.option("--git", "git_url", required=True, metavar="URL",
              help="Git URL of the image's source (must pass the server's --source-allow).")
@click.option("--branch", default=None, help="Branch (default: the namespace's name, f25).")
def image_submit(url: str, user: str | None, password: str | None, as_json: bool,
                 repository: str, git_url: str, branch: str | None) -> None:
    """Submit new image REPOSITORY (<namespace>/<name>) for review: opens a review request
    and runs the automated checks at once (strata review show ID). Until a reviewer approves
    it, no candidate of it is registered."""
    from strata.cli.review_cmds import review_text

    data = run_api(url, user, password, lambda c: c.submit(repository, git_url, branch))
    emit(data, as_json, review_text)


# -- candidate --------------------------------------------------------------------------------
@click.group()
def candidate() -> None:
    """Candidate builds: pushed by digest, waiting for a release."""


@candidate.command("add")
@server_options
@click.argument("reference")
@click.option("--advisory", "advisories", multiple=True, help="Advisory ID this build fixes.")
@click.option("--reason", default=None, help="Why this build (shown in the release notes; "
              "with --force, recorded in the image's events).")
@click.option("--force", is_flag=True, default=False, help="releng/admin: register it although "
              "the image is not approved (needs --reason).")
def candidate_add(url: str, user: str | None, password: str | None, as_json: bool,
                  reference: str, advisories: tuple[str, ...], reason: str | None,
                  force: bool) -> None:
    """Register REFERENCE (<namespace>/<name>@<digest>, <name>@<digest>) as a candidate.

    Only an active (approved) image takes candidates: submit a new one with
    'strata image submit'."""
    if force and not (reason or "").strip():
        raise click.UsageError("--force needs --reason (recorded in the image's events)")
    data = run_api(url, user, password, lambda c: c.add_candidate(
        reference, advisories=advisories, reason=reason, force=force))
    if not as_json:
        for warning in data.get("warnings") or ():
            click.echo(f"warning: {warning}", err=True)
    emit(data, as_json, lambda d: f"{d['repository']}@{d['digest']}: {d['nvr']} ({d['status']})")


@candidate.command("withdraw")
@server_options
@click.argument("reference")
@click.option("--reason", required=True, help="Why (recorded on the build, shown by list).")
def candidate_withdraw(url: str, user: str | None, password: str | None, as_json: bool,
                       reference: str, reason: str) -> None:
    """Take pending build REFERENCE (<namespace>/<name>@<digest>) out of the next release.

    Its manifest may then be deleted or garbage-collected; its NVR stays taken."""
    data = run_api(url, user, password, lambda c: c.withdraw_candidate(reference,
                                                                       reason=reason))
    emit(data, as_json, lambda d: f"{d['repository']}@{d['digest']}: {d['nvr']} withdrawn by "
         f"{d['withdrawn']['by']} at {d['withdrawn']['at']}: {d['withdrawn']['reason']}")


def _build_line(b: dict[str, Any]) -> str:
    line = f"{b['repository']}\t{b['nvr']}\t{_short(b['digest'])}\t{b['status']}"
    withdrawn = b.get("withdrawn")
    if withdrawn:
        line += f"\tby {withdrawn['by']} at {withdrawn['at']}: {withdrawn['reason']}"
    return line


@candidate.command("list")
@server_options
@click.option("--namespace", default=None)
@click.option("--repository", default=None)
@click.option("--status", type=click.Choice(["unreleased", "candidate", "withdrawn",
                                            "released", "all"]),
              default="unreleased", show_default=True,
              help="unreleased: pending (candidate) and withdrawn builds.")
def candidate_list(url: str, user: str | None, password: str | None, as_json: bool,
                   namespace: str | None, repository: str | None, status: str) -> None:
    """List builds (pending and withdrawn ones by default; withdrawn ones with who, when and
    why)."""
    data = run_api(url, user, password, lambda c: c.candidates(
        namespace=namespace, repository=repository, status=status))
    emit(data, as_json, lambda d: "\n".join(_build_line(b) for b in d["candidates"]))


# -- release ----------------------------------------------------------------------------------
@click.group()
def release() -> None:
    """Scheduled and out-of-band releases."""


def _plan_text(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for plan in data["plans"]:
        ns = plan["namespace"]
        lines.append(f"{ns['name']} (dist tag {ns['dist_tag']}, every {ns['interval_days']} "
                     f"days from {ns['anchor']}; last published: "
                     f"{plan['last_published'] or 'never'})")
        lines.append("  next: " + ", ".join(
            f"{n['date']} ({n['name']}{', due now' if n['due'] else ''})" for n in plan["next"]))
        lines.append(f"  {plan['release']} would move:" if plan["images"]
                     else f"  {plan['release']}: no candidates")
        for image in plan["images"]:
            lines += [f"    {x['repository']}: LEFT OUT {x['nvr']}: {x['reason']}"
                      for x in image.get("left_out") or ()]
            if image["problem"]:
                lines.append(f"    {image['repository']}: CANNOT PUBLISH: {image['problem']}")
                continue
            if not image["builds"]:  # every build of it left out
                continue
            lines.append(f"    {image['repository']}")
            lines += [f"      {m['tag']:<20} {_tag_of(m['old_nvr']):<20} -> "
                      f"{_tag_of(m['new_nvr']):<20} {_short(m['old_digest'])} -> "
                      f"{_short(m['new_digest'])}" for m in image["moves"]]
            lines += [f"      {s['tag']:<20} unchanged: {s['reason']}" for s in image["skips"]]
        lines += [f"  waiting (image not active): {b['repository']} {b['nvr']}"
                  for b in plan["waiting"]]
        rebuilds = plan.get("rebuilds") or []
        if rebuilds:
            lines.append("  pending rebuilds (their builds join the release once registered):")
        lines += [f"    {r['repository']} (job {r['id']}, {r['state']}): {r['reason'] or ''}"
                  for r in rebuilds]
    return "\n".join(lines) or "no namespaces"


@release.command("plan")
@server_options
@click.option("--namespace", default=None)
@click.option("--count", type=click.IntRange(1, 100), default=3, show_default=True,
              help="How many scheduled dates to show.")
def release_plan(url: str, user: str | None, password: str | None, as_json: bool,
                 namespace: str | None, count: int) -> None:
    """Show the next scheduled dates and exactly which tags the next release moves."""
    data = run_api(url, user, password, lambda c: c.plan(namespace, count))
    emit(data, as_json, _plan_text)


def _release_text(d: dict[str, Any]) -> str:
    return (f"{d['name']}\t{d['kind']}\t{d['status']}\t"
            f"{d['published_at'] or d['scheduled_for'] or '-'}\t{d['actor'] or '-'}")


def _published_text(d: dict[str, Any]) -> str:
    lines = [f"published {d['name']} ({d['kind']})"]
    for image in (d.get("notes") or {}).get("images", []):
        lines += [f"  {image['repository']}:{t['tag']}  {_tag_of(t['old_nvr'])} -> "
                  f"{_tag_of(t['new_nvr'])}" for t in image["tags"]]
        if not image.get("streams_moved", True):
            lines.append(f"  {image['repository']}: no stream moved")
    lines += [f"  left out (still pending): {x['repository']} {x['nvr']}: {x['reason']}"
              for x in (d.get("notes") or {}).get("left_out", [])]
    return "\n".join(lines)


@release.command("publish")
@server_options
@click.argument("name", required=False)
@click.option("--namespace", default=None, help="Whose next release (if several namespaces).")
def release_publish(url: str, user: str | None, password: str | None, as_json: bool,
                    name: str | None, namespace: str | None) -> None:
    """Publish release NAME now (default: the next scheduled one, even before its date)."""
    data = run_api(url, user, password, lambda c: c.publish(name, namespace))
    emit(data, as_json, _published_text)


@release.command("list")
@server_options
@click.option("--namespace", default=None)
def release_list(url: str, user: str | None, password: str | None, as_json: bool,
                 namespace: str | None) -> None:
    """List releases, newest first."""
    data = run_api(url, user, password, lambda c: c.releases(namespace))
    emit(data, as_json, lambda d: "\n".join(_release_text(r) for r in d["releases"]))


@release.command("show")
@server_options
@click.argument("name")
def release_show(url: str, user: str | None, password: str | None, as_json: bool,
                 name: str) -> None:
    """Show release NAME (or the one release of a date, 2026-11-28) with its notes
    (Markdown; --json for everything)."""
    data = run_api(url, user, password, lambda c: c.release(name))
    emit(data, as_json, lambda d: d["notes_markdown"] or _release_text(d))


@release.command("oob")
@server_options
@click.argument("references", nargs=-1, required=True)
@click.option("--advisory", "advisories", multiple=True, required=True,
              help="Advisory ID (repeatable).")
@click.option("--reason", required=True, help="Why this cannot wait for the schedule.")
@click.option("--name", default=None, help="Release name (default <ns>-security-<date>-<n>).")
def release_oob(url: str, user: str | None, password: str | None, as_json: bool,
                references: tuple[str, ...], advisories: tuple[str, ...], reason: str,
                name: str | None) -> None:
    """Publish an out-of-band security release of REFERENCES (<repository>@<digest>) now."""
    data = run_api(url, user, password, lambda c: c.oob(
        references, advisories=advisories, reason=reason, name=name))
    emit(data, as_json, _published_text)


@release.command("rollback")
@server_options
@click.argument("reference")
@click.option("--to", "target", required=True, help="The older released NVR (130-1.f25docker).")
@click.option("--reason", required=True, help="Why (recorded in the tag history).")
def release_rollback(url: str, user: str | None, password: str | None, as_json: bool,
                     reference: str, target: str, reason: str) -> None:
    """Move floating tag REFERENCE (<repository>:<tag>) back to an older release."""
    data = run_api(url, user, password, lambda c: c.rollback(reference, to=target,
                                                             reason=reason))
    emit(data, as_json, lambda d: f"{d['repository']}:{d['tag']} {_short(d['old_digest'])} -> "
         f"{_short(d['new_digest'])} ({d['reason']})")


# -- stream, history, webhook -----------------------------------------------------------------
@click.group()
def stream() -> None:
    """Version streams of an image."""


@stream.command("eol")
@server_options
@click.argument("reference")
def stream_eol(url: str, user: str | None, password: str | None, as_json: bool,
               reference: str) -> None:
    """End the stream REFERENCE (<repository>:<version>): its tag stays, frozen."""
    data = run_api(url, user, password, lambda c: c.eol(reference))
    emit(data, as_json, lambda d: f"{d['repository']}:{d['version']} is end-of-life "
         f"(since {d['eol_at']}, by {d['eol_by']})")


@stream.command("list")
@server_options
@click.argument("repository")
def stream_list(url: str, user: str | None, password: str | None, as_json: bool,
                repository: str) -> None:
    """List the version streams of REPOSITORY."""
    data = run_api(url, user, password, lambda c: c.streams(repository))
    emit(data, as_json, lambda d: "\n".join(
        f"{s['version']}\t{'end-of-life' if s['eol'] else 'supported'}" for s in d["streams"]))


@click.command()
@server_options
@click.argument("reference")
@click.option("--at", default=None, help="A time (ISO 8601, UTC by default, or Unix seconds): "
              "show what the tag pointed to then.")
def history(url: str, user: str | None, password: str | None, as_json: bool, reference: str,
            at: str | None) -> None:
    """Show the moves of tag REFERENCE (<repository>:<tag>), or where it pointed --at a time;
    for an image (<repository>, no tag): what happened to it -- review, builds, candidates,
    releases -- oldest first."""
    if ":" not in reference:
        if at is not None:
            raise click.UsageError("--at needs a tag: <repository>:<tag>")
        emit(run_api(url, user, password, lambda c: image_history(c, reference)), as_json,
             timeline_text)
        return
    data = run_api(url, user, password, lambda c: c.history(reference, at))

    def text(d: dict[str, Any]) -> str:
        if at is not None:
            return f"{reference} at {at}: {d['digest'] or '(no such tag then)'}" + (
                f" ({d['nvr']})" if d.get("nvr") else "")
        return "\n".join(f"{e['at']}\t{_short(e['old_digest'])} -> {_short(e['new_digest'])}"
                         f"\t{e['actor']}\t{e['release'] or e['reason'] or ''}"
                         for e in d["events"])
    emit(data, as_json, text)


@click.group()
def webhook() -> None:
    """Webhooks: where release events are POSTed."""


@webhook.command("add")
@server_options
@click.argument("target")
@click.option("--event", "events", multiple=True, help="Event to send (default: all).")
@click.option("--secret", default=None, help="HMAC-SHA256 key for X-Strata-Signature "
              "(other local users can see a command line: prefer --secret-stdin).")
@click.option("--secret-stdin", is_flag=True, help="Read the HMAC key from stdin (one line).")
def webhook_add(url: str, user: str | None, password: str | None, as_json: bool, target: str,
                events: tuple[str, ...], secret: str | None, secret_stdin: bool) -> None:
    """Send release events to TARGET (an http(s) URL).

    The server keeps the secret, and TARGET's credentials if it has any (user:password@, a
    token= parameter), sealed with its key, and shows TARGET redacted from then on. It refuses
    loopback, link-local and private destinations unless started with
    --webhook-allow-private."""
    if secret_stdin:
        if secret is not None:
            raise click.UsageError("--secret and --secret-stdin exclude each other")
        secret = sys.stdin.readline().rstrip("\r\n") or None
    data = run_api(url, user, password, lambda c: c.add_webhook(target, events=events,
                                                                secret=secret))
    emit(data, as_json, lambda d: f"webhook {d['id']}: {d['url']}")


@webhook.command("list")
@server_options
def webhook_list(url: str, user: str | None, password: str | None, as_json: bool) -> None:
    """List webhooks."""
    data = run_api(url, user, password, lambda c: c.webhooks())
    emit(data, as_json, lambda d: "\n".join(
        f"{h['id']}\t{h['url']}\t{','.join(h['events']) or 'all'}" for h in d["webhooks"]))


COMMANDS = (namespace, image, candidate, release, stream, history, webhook)
