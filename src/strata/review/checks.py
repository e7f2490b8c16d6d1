"""The automated checks of a review request (``strata image submit``), run at once.

In order, each ``ok`` (True), failed (False) or not run (None, with why):

1. ``containerfile``: the source clones (the server's allow-list was checked before) and its
   Containerfile parses;
2. ``labels``: the label policy passes (:func:`strata.build.labels.check_labels`) and the
   ``name`` label names the submitted image;
3. ``help``: a help file exists (``help.md`` or ``README.md``);
4. ``base``: ``FROM`` (through earlier stages) names an ``active`` base image of the namespace,
   in this registry;
5. ``builds``: the image builds — with the builder, in-process on a thread, RUN in the
   builder's jail, bases pulled from this registry (anonymously: the bases must be pullable);
   nothing is pushed or registered;
6. ``reproducible``: a second build, in a fresh directory, gives the same digest (else the
   detail lists what differs: each differing layer, path and what about it, as
   ``strata build --verify`` does);
7. ``usage``: the ``usage`` (or ``run``) label is present.

The builds run directly with the builder, not as build jobs: a check's build registers no
candidate and must not wait behind the job queue.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from strata.build import containerfile as cf
from strata.build.builder import BuildOptions, LocalBuild, build_image, help_file, plan_build
from strata.build.compare import image_differences
from strata.build.context import Source, open_source
from strata.build.errors import BuildError
from strata.build.labels import check_labels, own_labels, split_name
from strata.build.remote import Puller, parse_image_ref, same_registry
from strata.client.registry import RegistryClient

CHECKS: tuple[tuple[str, str], ...] = (
    ("containerfile", "the Containerfile parses"),
    ("labels", "the label policy passes"),
    ("help", "a help file exists (help.md or README.md)"),
    ("base", "FROM names an active base image of the namespace"),
    ("builds", "the image builds"),
    ("reproducible", "a second build reproduces its digest"),
    ("usage", "the usage (or run) label is present"),
)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool | None  # None: not run
    detail: str

    def to_json(self) -> dict[str, Any]:
        title = dict(CHECKS).get(self.name, self.name)
        return {"name": self.name, "title": title, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class CheckInput:
    repository: str  # f25/cockpit
    namespace: str
    source_url: str
    source_branch: str | None
    active_bases: frozenset[str]  # repositories of the namespace's active images


#: What runs the checks of a request (:class:`SourceChecks`; tests inject others).
Checker = Callable[[CheckInput], Awaitable[list[CheckResult]]]


def passed(results: list[dict[str, Any]]) -> bool:
    return bool(results) and all(r.get("ok") is True for r in results)


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


class SourceChecks:
    """The default checker: clone, inspect, build twice (see the module's docstring)."""

    def __init__(self, registry_url: str, *, work_dir: Path | None = None,
                 cache_dir: Path | None = None, clone_timeout: float = 300.0) -> None:
        self.registry_url = registry_url
        self.work_dir = work_dir
        self.cache_dir = cache_dir
        self.clone_timeout = clone_timeout

    async def __call__(self, inp: CheckInput) -> list[CheckResult]:
        if self.work_dir is not None:
            self.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        top = Path(tempfile.mkdtemp(prefix="strata-review.", dir=self.work_dir))
        try:
            return await self._run(inp, top)
        finally:
            await asyncio.to_thread(shutil.rmtree, top, True)

    async def _run(self, inp: CheckInput, top: Path) -> list[CheckResult]:
        results: dict[str, CheckResult] = {}

        def fill(why: str) -> list[CheckResult]:
            return [results.get(name) or CheckResult(name, None, f"not run: {why}")
                    for name, _ in CHECKS]
        try:
            await _clone(inp.source_url, inp.source_branch, top / "source", self.clone_timeout)
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
        results["base"] = self._base(inp, _external_base(parsed, target))
        if not results["base"].ok:
            return fill("FROM does not name an active base image of the namespace")
        results.update(await self._builds(inp, source, top))
        return fill("the image does not build")

    def _base(self, inp: CheckInput, base: str) -> CheckResult:
        if base == "scratch":
            return CheckResult("base", False, "FROM scratch: layered images are built on a "
                                              f"base image of namespace {inp.namespace}")
        try:
            ref = parse_image_ref(base)
        except BuildError as exc:
            return CheckResult("base", False, exc.message)
        if not same_registry(ref, self.registry_url):
            return CheckResult("base", False, f"FROM {base}: not an image of this registry")
        if ref.repository == inp.repository or ref.repository not in inp.active_bases:
            known = ", ".join(sorted(inp.active_bases - {inp.repository})) or "none"
            return CheckResult("base", False, f"FROM {base}: {ref.repository} is not an active "
                                              f"image of namespace {inp.namespace} "
                                              f"(active: {known})")
        return CheckResult("base", True, f"{ref.repository} ({base})")

    async def _builds(self, inp: CheckInput, source: Source,
                      top: Path) -> dict[str, CheckResult]:
        cache = self.cache_dir or top / "cache"
        opts = BuildOptions(cache_dir=cache, namespace=inp.namespace)
        built: list[LocalBuild] = []
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                client = RegistryClient(self.registry_url, session)
                plan = await plan_build(source, opts, Puller(client, cache), self.registry_url)
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
