"""Compare two dumps of ``bench/memprobe`` (one worker, an earlier and a later one).

    python bench/memprobe/diff.py DIR/1234-001 DIR/1234-009 [--top 25] [--group lineno]

Prints the traced-size growth by allocation site (``tracemalloc`` ``compare_to``: lineno,
filename or traceback) and the live objects per type that grew the most.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--group", default="lineno", choices=("lineno", "filename", "traceback"))
    args = p.parse_args()
    a, b = Path(args.before), Path(args.after)
    ja, jb = (json.loads(x.with_suffix(".json").read_text()) for x in (a, b))
    minutes = (jb["time"] - ja["time"]) / 60
    print(f"{minutes:.1f} min apart; traced {ja['traced'] / 2**20:.2f} -> "
          f"{jb['traced'] / 2**20:.2f} MiB; smaps Private_Dirty "
          f"{ja['smaps_rollup'].get('Private_Dirty', 0) / 1024:.1f} -> "
          f"{jb['smaps_rollup'].get('Private_Dirty', 0) / 1024:.1f} MiB, Pss "
          f"{ja['smaps_rollup'].get('Pss', 0) / 1024:.1f} -> "
          f"{jb['smaps_rollup'].get('Pss', 0) / 1024:.1f} MiB")
    sa = tracemalloc.Snapshot.load(str(a.with_suffix(".snap")))
    sb = tracemalloc.Snapshot.load(str(b.with_suffix(".snap")))
    stats = sb.compare_to(sa, args.group)
    print(f"\ntop {args.top} allocation sites by growth ({args.group}):")
    for st in stats[:args.top]:
        print(f"  {st.size_diff / 1024:+9.1f} KiB {st.count_diff:+7d} blocks  "
              f"(now {st.size / 1024:.1f} KiB)  ", end="")
        if args.group == "traceback":
            print()
            for line in st.traceback.format(limit=12):
                print("      " + line)
        else:
            print(st.traceback)
    types_a, types_b = ja["types"], jb["types"]
    grown = sorted(((types_b.get(t, 0) - types_a.get(t, 0), t)
                    for t in set(types_a) | set(types_b)), reverse=True)
    print("\nlive objects per type, most grown:")
    for d, t in grown[:args.top]:
        if d:
            print(f"  {d:+8d}  {t} ({types_a.get(t, 0)} -> {types_b.get(t, 0)})")


if __name__ == "__main__":
    main()
