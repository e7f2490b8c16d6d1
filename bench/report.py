"""Medians, ratios, targets, and the Markdown table."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from typing import Any

NAMES = ("strata", "distribution")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    fmt: str = "{:.0f}"
    target: float | None = None  # on strata/distribution
    lower_is_better: bool = False
    target_text: str = "—"
    # a target on strata's own value (not on the ratio): the push rows' fraction of the
    # machine's limit, min(sha256 rate, durable disk rate)
    own_target: float | None = None


def metrics(args: argparse.Namespace) -> list[Metric]:
    b, ch, big = args.blob_mib, args.chunk_mib, args.big_mib
    out = []
    for kind, what in (("mono", f"Monolithic push {b} MiB (POST+PUT"),
                       ("chunked", f"Chunked push {b} MiB ({ch} MiB PATCHes")):
        # issue #18: >= 3x distribution and >= 50% of min(sha256, durable disk), both clients
        for client, label in (("", "sendfile client"), ("_aiohttp", "aiohttp client")):
            out.append(Metric(f"{kind}_push{client}_mib_s", f"{what}, {label}), MiB/s",
                              target=3.0))
            out.append(Metric(f"{kind}_push{client}_limit_frac",
                              f"{what}, {label}), fraction of the limit", fmt="{:.0%}",
                              own_target=0.5))
        out.append(Metric(f"{kind}_limit_mib_s", f"Limit before each {kind} pair: "
                          "min(sha256, durable disk), MiB/s"))
        out.append(Metric(f"{kind}_limit_sha256_mib_s", f"… sha256 before each {kind} pair, "
                          "MiB/s"))
        out.append(Metric(f"{kind}_limit_disk_mib_s", f"… durable disk before each {kind} "
                          "pair (best of buffered, O_DIRECT), MiB/s"))
    out += [
        Metric("blob_get_curl_mib_s", f"Blob GET warm {b} MiB (curl), MiB/s", target=1.0),
        # issue #18: no client sees strata slower than distribution
        Metric("blob_get_mib_s", f"Blob GET warm {b} MiB, aiohttp client, MiB/s", target=1.0),
        Metric("blob_get_skopeo_mib_s", f"Blob GET warm {b} MiB as an image layer, skopeo "
               "copy (Go containers/image) to tmpfs, MiB/s", target=1.0),
    ]
    for c in [int(x) for x in args.concurrency.split(",") if x]:
        for ref in ("tag", "digest"):
            out.append(Metric(f"manifest_{ref}_c{c}_rps", f"Manifest GET by {ref} c={c}, req/s",
                              target=3.0))
            out.append(Metric(f"manifest_{ref}_c{c}_p99_ms",
                              f"Manifest GET by {ref} c={c}, p99 ms", fmt="{:.2f}",
                              target=1.0, lower_is_better=True, target_text="lower"))
    out += [
        Metric("head_blob_c64_rps", "HEAD blob (empty blob) c=64, req/s"),
        Metric("head_blob_c64_p99_ms", "HEAD blob (empty blob) c=64, p99 ms", fmt="{:.2f}",
               lower_is_better=True),
        Metric("small_image_pushes_per_s",
               f"{args.images} small-image pushes by {args.pushers} workers, images/s",
               fmt="{:.1f}", target=3.0),
        Metric("small_image_server_cpu_ms", "… server CPU per small image (all its processes "
               "and threads), ms", fmt="{:.2f}", lower_is_better=True),
        Metric("small_image_server_sys_ms", "… of it kernel (system) time, ms", fmt="{:.2f}",
               lower_is_better=True),
        Metric("tag_put_per_s", f"Manifest PUT under {args.tags} tags, c=16 (setup, once), "
               "tags/s"),
        Metric("tag_walk_ms", f"Tag list walk, {args.tags} tags with n={args.page}, ms",
               fmt="{:.1f}", lower_is_better=True),
        Metric("mono_push_peak_rss_mib", f"Peak server RSS, {b} MiB monolithic push, MiB",
               lower_is_better=True),
        Metric("chunked_push_peak_rss_mib", f"Peak server RSS, {b} MiB chunked push, MiB",
               lower_is_better=True),
        Metric("blob_get_peak_rss_mib", f"Peak server RSS, {b} MiB GETs, MiB",
               lower_is_better=True),
        Metric("big_push_mib_s", f"Monolithic push {big} MiB (once), MiB/s"),
        Metric("big_get_mib_s", f"Blob GET {big} MiB (once), MiB/s"),
        Metric("big_push_peak_rss_mib", f"Peak server RSS, {big} MiB push, MiB",
               lower_is_better=True),
        Metric("big_get_peak_rss_mib", f"Peak server RSS, {big} MiB GET, MiB",
               lower_is_better=True),
        Metric("big_push_peak_pss_mib", f"Peak server PSS, {big} MiB push, MiB",
               lower_is_better=True),
        Metric("big_get_peak_pss_mib", f"Peak server PSS, {big} MiB GET, MiB",
               lower_is_better=True),
    ]
    return out


def summarize(samples: dict[str, dict[str, list[float]]], info: dict[str, dict[str, Any]],
              errors: list[str], names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Medians and ratios (strata / distribution); with a ``base`` (an A/B run: another
    checkout's strata) also base / distribution and strata / base."""
    medians: dict[str, dict[str, float | None]] = {}
    ratios: dict[str, float | None] = {}
    base_ratios: dict[str, float | None] = {}
    ab_ratios: dict[str, float | None] = {}
    for key, per in samples.items():
        medians[key] = {n: (statistics.median(per[n]) if per.get(n) else None) for n in names}
        s, d = medians[key]["strata"], medians[key]["distribution"]
        ratios[key] = (s / d) if s is not None and d else None
        if "base" in names:
            b = medians[key]["base"]
            base_ratios[key] = (b / d) if b is not None and d else None
            ab_ratios[key] = (s / b) if s is not None and b else None
    out = {"samples": samples, "medians": medians, "ratios": ratios, "info": info,
           "errors": errors, "names": list(names)}
    if "base" in names:
        out["base_ratios"] = base_ratios
        out["strata_vs_base"] = ab_ratios
    return out


def _met(m: Metric, ratio: float | None, own: float | None = None) -> str:
    if m.own_target is not None:
        text = f"≥ {m.own_target:.0%}"
        return text if own is None else f"{text} {'✅' if own >= m.own_target else '❌'}"
    if m.target is None:
        return m.target_text
    text = m.target_text if m.lower_is_better else f"≥ {m.target:g}×"  # noqa: RUF001
    if ratio is None:
        return text
    ok = ratio < m.target if m.lower_is_better else ratio >= m.target
    return f"{text} {'✅' if ok else '❌'}"


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    med, ratios, info = results["medians"], results["ratios"], results["info"]
    if "base_ratios" in results:
        return _markdown_ab(results, args)
    lines = ["| metric | strata | distribution | ratio | target |",
             "| --- | ---: | ---: | ---: | --- |"]
    for m in metrics(args):
        if m.key not in med:
            continue
        vals = [med[m.key][n] for n in NAMES]
        cells = [m.fmt.format(v) if v is not None else "—" for v in vals]
        ratio = ratios.get(m.key)
        rcell = f"{ratio:.2f}×" if ratio is not None else "—"  # noqa: RUF001
        lines.append(f"| {m.label} | {cells[0]} | {cells[1]} | {rcell} | "
                     f"{_met(m, ratio, vals[0])} |")
    if any("pagination_honoured" in info.get(n, {}) for n in NAMES):
        cells = []
        for n in NAMES:
            i = info.get(n, {})
            pages = i.get("tag_walk_pages", [])
            cells.append(f"{'yes' if i.get('pagination_honoured') else 'no'} "
                         f"({len(pages)} page{'s' if len(pages) != 1 else ''}, "
                         f"max {max(pages, default=0)})")
        lines.append(f"| Tag list n={args.page} honoured | {cells[0]} | {cells[1]} | — | "
                     f"n honoured {'✅' if info['strata'].get('pagination_honoured') else '❌'} |")
    out = "\n".join(lines)
    notes = [f"Medians over {args.rounds} round(s); strata --workers {args.workers}; "
             f"ratio = strata / distribution (for p99, RSS and times lower is better)."]
    loads = results.get("loadavg_per_round") or []
    if loads:
        notes.append("1-min load average at the start of each round: "
                     + ", ".join(f"{la[0]:.1f}" for la in loads)
                     + f" (on {results.get('machine', {}).get('cpus', '?')} CPUs).")
    disk = results.get("machine", {}).get("disk_write_mib_s")
    if disk:
        notes.append("Disk write + fdatasync before/after the run: "
                     + " / ".join(f"{d:.0f}" for d in disk) + " MiB/s (strata's durable "
                     "pushes cannot go faster; distribution does not sync).")
    if results.get("errors"):
        notes.append("ERRORS: " + "; ".join(results["errors"]))
    if results.get("failed"):
        notes.append(f"FAILED: {results['failed']}")
    return out + "\n\n" + "\n".join(notes)


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "—"  # noqa: RUF001


def _markdown_ab(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The A/B table: strata (this tree), base (``--base-src``), distribution; each strata's
    ratio to distribution, and strata / base."""
    med = results["medians"]
    lines = ["| metric | strata | base | distribution | ratio | base ratio | strata / base "
             "| target |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for m in metrics(args):
        if m.key not in med:
            continue
        vals = [med[m.key][n] for n in ("strata", "base", "distribution")]
        cells = [m.fmt.format(v) if v is not None else "—" for v in vals]
        ratio = results["ratios"].get(m.key)
        lines.append(f"| {m.label} | {cells[0]} | {cells[1]} | {cells[2]} | {_ratio(ratio)} | "
                     f"{_ratio(results['base_ratios'].get(m.key))} | "
                     f"{_ratio(results['strata_vs_base'].get(m.key))} | "
                     f"{_met(m, ratio, vals[0])} |")
    extra = getattr(args, "base_arg", [])
    base_args = f" with {' '.join(extra)}" if extra else ""
    notes = [f"Medians over {args.rounds} round(s) (strata and base alternating first, then "
             "distribution); strata "
             f"--workers {args.workers}; base = strata from {args.base_src}{base_args}"
             "; ratio = strata / distribution, base ratio = base / distribution."]
    loads = results.get("loadavg_per_round") or []
    if loads:
        notes.append("1-min load average at the start of each round: "
                     + ", ".join(f"{la[0]:.1f}" for la in loads)
                     + f" (on {results.get('machine', {}).get('cpus', '?')} CPUs).")
    samples = results["samples"].get("small_image_pushes_per_s")
    if samples:
        notes.append("Small-image rounds (images/s): " + "; ".join(
            f"{n} " + ", ".join(f"{v:.1f}" for v in samples.get(n, []))
            for n in ("strata", "base", "distribution")))
    if results.get("errors"):
        notes.append("ERRORS: " + "; ".join(results["errors"]))
    if results.get("failed"):
        notes.append(f"FAILED: {results['failed']}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)
