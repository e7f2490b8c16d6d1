"""How :class:`strata.review.checks.SourceChecks` runs the checks of a review request: clone,
inspect, build twice (the list is in :mod:`strata.review.checks`).

A module of its own, imported by the first request's checks: it brings the builder, which a
serving worker that never checks a request does not carry (issue #18, peak PSS).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from strata.build import containerfile as cf
from strata.build.builder import BuildOptions, LocalBuild, build_image, help_file, plan_build
from strata.build.compare import image_differences
from strata.build.context import Source, open_source
from strata.build.errors import BuildError
from strata.build.labels import check_labels, own_labels, split_name
from strata.build.remote import Puller, parse_image_ref, same_registry
from strata.client.registry import RegistryClient
from strata.review.checks import CHECKS, CheckInput, CheckResult, SourceChecks

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


async def _clone(url: str, branch: str | None, dest: Path, seconds: float) -> None:
    """Shallow clone with only the URL's own transport allowed (no hooks, no system or
    global configuration)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "ssh"
    env = {**_GIT_ENV, "HOME": os.fspath(dest.parent), "GIT_ALLOW_PROTOCOL": scheme,
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    args = ["git", "-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
            "-c", "core.hooksPath=/dev/null", "clone", "--quiet", "--depth", "1",
            "--single-branch", "--no-tags"]
    if branch:
        args += ["--branch", branch]
    proc = await asyncio.create_subprocess_exec(
        *args, "--", url, os.fspath(dest), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BuildError(f"git clone took longer than {seconds:.0f} s") from None
    if proc.returncode != 0:
        raise BuildError(f"git clone failed: {err.decode(errors='replace').strip()[:500]}")


def _external_base(parsed: cf.Containerfile, target: cf.Stage) -> str:
    """The image the target stage is built on, through ``FROM <earlier stage>`` chains."""
    stage = target
    seen: set[int] = set()
    while stage.index not in seen:
        seen.add(stage.index)
        prior = next((s for s in parsed.stages[:stage.index]
                      if s.name is not None and s.name == stage.base.lower()), None)
        if prior is None:
            return stage.base
        stage = prior
    return stage.base


async def run(checks: SourceChecks, inp: CheckInput, top: Path) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}

    def fill(why: str) -> list[CheckResult]:
        return [results.get(name) or CheckResult(name, None, f"not run: {why}")
                for name, _ in CHECKS]
    try:
        await _clone(inp.source_url, inp.source_branch, top / "source", checks.clone_timeout)
        source = await asyncio.to_thread(open_source, os.fspath(top / "source"))
        text = source.containerfile.read_text(encoding="utf-8")
        parsed = cf.parse_containerfile(text)
    except (BuildError, OSError, UnicodeDecodeError) as exc:
        message = exc.message if isinstance(exc, BuildError) else str(exc)
        results["containerfile"] = CheckResult("containerfile", False, message)
        return fill("the source could not be read")
    except cf.ContainerfileError as exc:
        results["containerfile"] = CheckResult(
            "containerfile", False, f"line {exc.line}: {exc.message}")
        return fill("the Containerfile does not parse")
    results["containerfile"] = CheckResult(
        "containerfile", True, f"{len(parsed.stages)} stage(s)")
    target = parsed.stages[-1]
    labels = own_labels(parsed, target)
    helpdoc = help_file(source.root)
    report = check_labels(labels, help_file=None if helpdoc is None else helpdoc.name)
    problems = list(report.problems)
    image_name = inp.repository.rsplit("/", 1)[-1]
    named = split_name(labels.get("name", "").strip())[1]
    if named and named != image_name:
        problems.append(f"label name={labels['name']!r} does not name the image "
                        f"{inp.repository} (want {image_name!r})")
    results["labels"] = CheckResult("labels", not problems,
                                    "; ".join(problems) or "all required labels set")
    results["help"] = CheckResult(
        "help", helpdoc is not None,
        helpdoc.name if helpdoc is not None else "no help.md or README.md in the source")
    results["usage"] = CheckResult(
        "usage", any(labels.get(k, "").strip() for k in ("usage", "run")),
        labels.get("usage") or labels.get("run") or "no usage or run label")
    results["base"] = _base(checks, inp, _external_base(parsed, target))
    if not results["base"].ok:
        return fill("FROM does not name an active base image of the namespace")
    results.update(await _builds(checks, inp, source, top))
    return fill("the image does not build")

def _base(checks: SourceChecks, inp: CheckInput, base: str) -> CheckResult:
    if base == "scratch":
        return CheckResult("base", False, "FROM scratch: layered images are built on a "
                                          f"base image of namespace {inp.namespace}")
    try:
        ref = parse_image_ref(base)
    except BuildError as exc:
        return CheckResult("base", False, exc.message)
    if not same_registry(ref, checks.registry_url):
        return CheckResult("base", False, f"FROM {base}: not an image of this registry")
    if ref.repository == inp.repository or ref.repository not in inp.active_bases:
        known = ", ".join(sorted(inp.active_bases - {inp.repository})) or "none"
        return CheckResult("base", False, f"FROM {base}: {ref.repository} is not an active "
                                          f"image of namespace {inp.namespace} "
                                          f"(active: {known})")
    return CheckResult("base", True, f"{ref.repository} ({base})")

async def _builds(checks: SourceChecks, inp: CheckInput, source: Source,
              top: Path) -> dict[str, CheckResult]:
    cache = checks.cache_dir or top / "cache"
    opts = BuildOptions(cache_dir=cache, namespace=inp.namespace)
    built: list[LocalBuild] = []
    try:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = RegistryClient(checks.registry_url, session)
            plan = await plan_build(source, opts, Puller(client, cache), checks.registry_url)
        for index in range(2):  # both kept until compared
            work = top / f"work{index}"
            work.mkdir()
            built.append(await asyncio.to_thread(build_image, plan, opts, work,
                                                 extra_labels={}, log=lambda _: None,
                                                 output=lambda _: None))
    except BuildError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        failed = "builds" if not built else "reproducible"
        out = {failed: CheckResult(failed, False, f"{where}{exc.message}"[:2000])}
        if built:
            out["builds"] = CheckResult("builds", True, built[0].image.digest)
        return out
    first, second = (b.image for b in built)
    if first.digest == second.digest:
        return {"builds": CheckResult("builds", True, first.digest),
                "reproducible": CheckResult("reproducible", True, second.digest)}
    differences = await asyncio.to_thread(image_differences, first.layers, second.layers,
                                          (first.config, second.config))
    detail = "\n".join([f"two builds of one commit differ: {first.digest} then "
                        f"{second.digest}", *differences])
    return {"builds": CheckResult("builds", True, first.digest),
            "reproducible": CheckResult("reproducible", False, _bounded(detail))}


def _bounded(text: str, limit: int = 2000) -> str:
    """*text*, cut at a line end to at most *limit* characters (a check's detail)."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - 20)
    return text[:cut if cut > 0 else limit - 20] + "\n  ... (more differences)"
