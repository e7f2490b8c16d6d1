"""NVR parsing, validation, tag safety and ordering."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.release.nvr import NVR, InvalidNVR
from strata.release.rpmvercmp import evr_compare


def test_parse_splits_from_the_right() -> None:
    nvr = NVR.parse("f25/cockpit-130-1.f25docker")
    assert nvr == NVR("f25/cockpit", "130", "1.f25docker")
    nvr = NVR.parse("my-base-image-2.4.1-3.el9")
    assert (nvr.name, nvr.version, nvr.release) == ("my-base-image", "2.4.1", "3.el9")


def test_str_and_tag() -> None:
    nvr = NVR("f25/cockpit", "130", "1.f25docker")
    assert str(nvr) == "f25/cockpit-130-1.f25docker"
    assert nvr.tag == "130-1.f25docker"
    assert nvr.version_release == "130-1.f25docker"
    assert NVR.parse(str(nvr)) == nvr


@pytest.mark.parametrize(
    "text", ["", "cockpit", "cockpit-130", "-130-1", "cockpit--1", "cockpit-130-", "a-1 -1"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidNVR):
        NVR.parse(text)


def test_invalid_nvr_is_a_value_error() -> None:
    assert issubclass(InvalidNVR, ValueError)


def test_from_labels() -> None:
    labels = {"name": "f25/cockpit", "version": "130", "release": "1.f25docker", "x": "y"}
    assert NVR.from_labels(labels) == NVR("f25/cockpit", "130", "1.f25docker")


@pytest.mark.parametrize("missing", ["name", "version", "release"])
def test_from_labels_missing(missing: str) -> None:
    labels = {"name": "cockpit", "version": "130", "release": "1"}
    del labels[missing]
    with pytest.raises(InvalidNVR, match=f"missing label.*{missing}"):
        NVR.from_labels(labels)


def test_from_labels_reports_all_missing() -> None:
    with pytest.raises(InvalidNVR, match="name, version, release"):
        NVR.from_labels({})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "name is empty"),
        ("name", "cock pit", "whitespace"),
        ("name", "cockpit\n", "whitespace"),
        ("name", "cock\x00pit", "control"),
        ("version", "", "version is empty"),
        ("version", "1-30", "contains '-'"),
        ("version", "130 ", "whitespace"),
        ("version", "1\t30", "whitespace"),
        ("version", "1:30", "may only contain"),
        ("version", "1/30", "may only contain"),
        ("version", "13é", "may only contain"),
        ("release", "", "release is empty"),
        ("release", "1-1", "contains '-'"),
        ("release", " 1", "whitespace"),
        ("release", "1,f25", "may only contain"),
    ],
)
def test_validation(field: str, value: str, message: str) -> None:
    labels = {"name": "cockpit", "version": "130", "release": "1.f25docker", field: value}
    with pytest.raises(InvalidNVR, match=message):
        NVR.from_labels(labels)
    with pytest.raises(InvalidNVR, match=message):
        NVR(labels["name"], labels["version"], labels["release"])


def test_non_string_label_value() -> None:
    labels: dict[str, object] = {"name": "cockpit", "version": 130, "release": "1"}
    with pytest.raises(InvalidNVR, match="version must be a string"):
        NVR.from_labels(labels)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "release"),
    [("1.0~rc1", "1"), ("1.0^git1", "1"), ("1.0", "1+b1"), ("1.0", "1~1"), ("1.0", "^")],
)
def test_rpm_characters_are_valid_but_not_tag_safe(version: str, release: str) -> None:
    nvr = NVR("cockpit", version, release)  # valid as an rpm NVR
    assert not nvr.is_tag_safe()
    problem = nvr.tag_safety_problem()
    assert problem is not None
    assert "not allowed in a tag" in problem
    with pytest.raises(InvalidNVR, match="not allowed in a tag"):
        nvr.check_tag_safe()
    with pytest.raises(InvalidNVR):
        _ = nvr.tag


@pytest.mark.parametrize(
    ("version", "release", "message"),
    [
        ("latest", "1", "collide with the Name stream"),
        (".130", "1", "not a valid OCI tag"),
        ("1" * 64, "2" * 64, "not a valid OCI tag"),  # 129 characters
    ],
)
def test_not_tag_safe(version: str, release: str, message: str) -> None:
    nvr = NVR("cockpit", version, release)
    assert not nvr.is_tag_safe()
    with pytest.raises(InvalidNVR, match=message):
        nvr.check_tag_safe()


@pytest.mark.parametrize(
    ("version", "release"), [("130", "1.f25docker"), ("_1", "1"), ("1" * 64, "2" * 63)]
)
def test_tag_safe(version: str, release: str) -> None:
    nvr = NVR("cockpit", version, release)
    assert nvr.is_tag_safe()
    assert nvr.tag_safety_problem() is None
    nvr.check_tag_safe()
    assert nvr.tag == f"{version}-{release}"


def test_ordering_uses_version_then_release() -> None:
    a = NVR("cockpit", "130", "1.f25docker")
    b = NVR("cockpit", "130", "2.f25docker")
    c = NVR("cockpit", "131", "0")
    assert a < b < c
    assert c > b > a
    assert a <= a and a >= a
    assert not a < a
    assert a.compare(b) == -1 and b.compare(a) == 1 and a.compare(a) == 0
    assert NVR("x", "1.10", "1") > NVR("x", "1.9", "1")


def test_ordering_ignores_name() -> None:
    assert NVR("a", "1", "1") < NVR("b", "1", "2")
    assert NVR("b", "1", "1") < NVR("a", "1", "2")


def test_rpm_equivalent_is_neither_less_nor_equal() -> None:
    a, b = NVR("x", "1.0", "1"), NVR("x", "1.00", "01")
    assert a.compare(b) == 0
    assert a <= b and a >= b
    assert not a < b and not a > b
    assert a != b
    assert len({a, b}) == 2


def test_equality_and_hash() -> None:
    assert NVR("x", "1", "1") == NVR.parse("x-1-1")
    assert hash(NVR("x", "1", "1")) == hash(NVR.parse("x-1-1"))


def test_compare_with_other_types_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = NVR("x", "1", "1") < "x-1-1"


def test_frozen() -> None:
    nvr = NVR("x", "1", "1")
    with pytest.raises(AttributeError):
        nvr.version = "2"  # type: ignore[misc]


pieces = st.text(alphabet="0129abzZ._~^+", min_size=1, max_size=8)
nvrs = st.builds(NVR, st.sampled_from(["cockpit", "f25/cockpit"]), pieces, pieces)
tag_safe_nvrs = st.builds(
    NVR,
    st.just("f25/cockpit"),
    st.from_regex(r"[0-9a-z][0-9a-z._]{0,7}", fullmatch=True),
    st.from_regex(r"[0-9a-z_][0-9a-z._]{0,7}", fullmatch=True),
)


@given(st.lists(nvrs, max_size=10))
def test_sorted_is_consistent_with_evr_compare(items: list[NVR]) -> None:
    ordered = sorted(items)
    for x, y in itertools.combinations(ordered, 2):
        assert evr_compare(x.version, x.release, y.version, y.release) <= 0
        assert x <= y
        assert not x > y


@given(nvrs, nvrs)
def test_operators_agree_with_compare(a: NVR, b: NVR) -> None:
    c = a.compare(b)
    assert (a < b) == (c < 0)
    assert (a <= b) == (c <= 0)
    assert (a > b) == (c > 0)
    assert (a >= b) == (c >= 0)
    assert b.compare(a) == -c


@given(nvrs)
def test_parse_round_trip(nvr: NVR) -> None:
    assert NVR.parse(str(nvr)) == nvr


@given(tag_safe_nvrs)
def test_tag_safe_nvrs_make_valid_tags(nvr: NVR) -> None:
    if nvr.version == "latest":
        return
    assert nvr.is_tag_safe()
    assert nvr.tag == f"{nvr.version}-{nvr.release}"
