"""``strata.server.malloc.drop_clean_file_pages`` (issue #18: the serving parent's PSS): the
pages of read-only library mappings go, the process goes on working (they are mapped again as
they run), and no mapping holding pages of its own is touched."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from strata.server import malloc


def _mappings() -> list[tuple[str, str, int, int]]:
    """(range, perms + path, Rss KiB, Anonymous KiB) of every mapping of this process."""
    rows: list[tuple[str, str, int, int]] = []
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            parts = line.split(None, 5)
            rows.append((head, f"{parts[1]} {parts[5] if len(parts) > 5 else ''}", 0, 0))
        elif head == "Rss:":
            rows[-1] = (*rows[-1][:2], int(line.split()[1]), rows[-1][3])
        elif head == "Anonymous:":
            rows[-1] = (*rows[-1][:3], int(line.split()[1]))
    return rows


def _sign_and_verify() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(b"strata", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(signature, b"strata", ec.ECDSA(hashes.SHA256()))


def test_library_pages_are_dropped_and_come_back_as_they_run() -> None:
    _sign_and_verify()
    before = {r[0]: r for r in _mappings()}
    rust = [r for r in before.values() if r[1].endswith("_rust.abi3.so") and "w" not in
            r[1].split()[0] and r[3] == 0]
    assert sum(r[2] for r in rust) > 1024  # cryptography's code, faulted in above

    dropped = malloc.drop_clean_file_pages()

    after = {r[0]: r for r in _mappings()}
    assert dropped >= sum(r[2] for r in rust)
    assert sum(after[r[0]][2] for r in rust) < sum(r[2] for r in rust) // 4
    # Mappings with pages of their own (relocated data, the heap, writable data) keep them.
    for key, (_, what, _rss, anonymous) in before.items():
        if anonymous and key in after:
            assert after[key][3] >= min(anonymous, 4), what
    _sign_and_verify()  # the code comes back from the page cache
    assert sum(after_r[2] for after_r in (r for r in _mappings()
                                          if r[1].endswith("_rust.abi3.so"))) > 0
