"""``strata.lazyimports.LazyModule``: a module imported on first attribute access, once, from
any thread, with the module's own answers (issue #18: what a serving worker does not carry)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
from strata.lazyimports import LazyModule
lazy = LazyModule("colorsys")  # a stdlib module nothing here has imported
before = "colorsys" in sys.modules
results = []
barrier = threading.Barrier(8)
def use():
    barrier.wait()
    results.append(lazy.rgb_to_hsv(1.0, 0.0, 0.0))
threads = [threading.Thread(target=use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
import colorsys
try:
    lazy.no_such_name
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(before, "colorsys" in sys.modules, results == [colorsys.rgb_to_hsv(1.0, 0.0, 0.0)] * 8,
      lazy.hsv_to_rgb is colorsys.hsv_to_rgb, missing)
"""


def test_imported_on_first_use_once_from_any_thread() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split(" ", 4) == [
        "False", "True", "True", "True",
        "module 'colorsys' has no attribute 'no_such_name'\n"]
