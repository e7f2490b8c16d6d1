#!/usr/bin/env python3
"""SBOM generation time against the number of packages: strata's writer
(:func:`strata.trust.sbom.make_sbom`) and cyclonedx-python-lib's model + outputter (the
reference the tests compare bytes with, ``tests/trust/test_sbom_bytes.py``).

Run from the project's root:  .venv/bin/python bench/sbom_bench.py [--sizes 500,1000,2000,4000]

CPU time of the process (``time.process_time``), best of ``--rounds`` (3), the two
interleaved; the load average is printed before and after. Both documents are checked equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from strata.trust.facts import PackageFact
from strata.trust.sbom import make_sbom
from trust.test_sbom_bytes import facts, library_sbom


def cpu(fn: object, arg: object) -> tuple[float, bytes]:
    started = time.process_time()
    out = fn(arg)  # type: ignore[operator]
    return time.process_time() - started, out  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000,4000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    print(f"{'packages':>8} {'library s':>10} {'strata s':>9} {'ratio':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        case = facts(tuple(PackageFact(f"pkg{i:05d}", f"1.{i}-1.fc25", "x86_64", "rpm")
                           for i in range(n)))
        lib, ours = [], []
        for _ in range(args.rounds):
            t_lib, body_lib = cpu(library_sbom, case)
            t_ours, body_ours = cpu(make_sbom, case)
            assert body_lib == body_ours, "the documents differ"
            lib.append(t_lib)
            ours.append(t_ours)
        print(f"{n:>8} {min(lib):>10.3f} {min(ours):>9.3f} {min(lib) / min(ours):>6.0f}x")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
