"""Which client a login is counted for behind a load balancer (``--trusted-proxy``):
:func:`strata.server.auth.client_address`."""

from __future__ import annotations

import pytest

from strata.server.auth import client_address, parse_trusted_proxies

LB = parse_trusted_proxies(["10.0.0.0/24", "fd00::1"])


def test_without_trusted_proxies_the_peer_counts() -> None:
    assert client_address("10.0.0.5", ["203.0.113.9"], ()) == "10.0.0.5"
    assert client_address(None, [], ()) == "unknown"


def test_a_peer_that_is_no_trusted_proxy_cannot_name_another_client() -> None:
    assert client_address("198.51.100.7", ["203.0.113.9"], LB) == "198.51.100.7"


def test_behind_the_balancer_the_right_most_untrusted_hop_counts() -> None:
    assert client_address("10.0.0.5", ["203.0.113.9"], LB) == "203.0.113.9"
    # what the client wrote itself stays to the left of the address the balancer saw
    assert client_address("10.0.0.5", ["1.2.3.4, 203.0.113.9"], LB) == "203.0.113.9"
    assert client_address("10.0.0.5", ["1.2.3.4", "203.0.113.9, 10.0.0.7"], LB) == \
        "203.0.113.9"
    assert client_address("fd00::1", ["2001:db8::5"], LB) == "2001:db8::5"


def test_garbage_stops_at_the_last_trusted_hop() -> None:
    assert client_address("10.0.0.5", ["203.0.113.9, not-an-ip"], LB) == "10.0.0.5"
    assert client_address("10.0.0.5", ["", " , "], LB) == "10.0.0.5"
    # a chain of only trusted hops: the left-most of them
    assert client_address("10.0.0.5", ["10.0.0.8, 10.0.0.9"], LB) == "10.0.0.8"


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="--trusted-proxy wants"):
        parse_trusted_proxies(["10.0.0.0/33"])
    assert [str(n) for n in parse_trusted_proxies(["10.0.0.1/24"])] == ["10.0.0.0/24"]
