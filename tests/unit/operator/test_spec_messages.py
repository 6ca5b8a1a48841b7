"""What a refused Shop is told, to the letter: each problem named by its path under spec, all of
them in one message, and the Shop's name checked before anything is built from it."""

from __future__ import annotations

from typing import Any

import pytest

from microshop_operator import spec
from microshop_operator.spec import InvalidSpec, parse_name, parse_quantity, parse_shop


def shop(body: dict[str, Any], name: Any = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "microshop.dev/v1alpha1",
        "kind": "Shop",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": body,
    }


def test_every_problem_is_named_by_its_path_in_one_message() -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_shop(shop({"services": {"users": {"replicas": -1}}, "bogus": 1}))

    assert str(refused.value) == (
        "spec.services.users.replicas: Input should be greater than or equal to 0; "
        "spec.bogus: Extra inputs are not permitted"
    )


def test_a_rule_of_a_part_is_reported_without_pydantics_prefix() -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_shop(shop({"databases": {"users": {"external": {}}}}))

    assert str(refused.value) == (
        "spec.databases.users: an external database needs external.secretRef: "
        "the Secret holding its URL"
    )


def test_a_location_is_spec_itself_or_a_path_below_it_without_validator_steps() -> None:
    assert spec._location(()) == "spec"
    assert spec._location(("gateway", "function-after[_check]", "replicas")) == (
        "spec.gateway.replicas"
    )
    assert spec._location(("services", 0)) == "spec.services.0"


@pytest.mark.parametrize("name", [None, "", 123])
def test_a_shop_without_a_usable_name_is_refused_first(name: Any) -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_name(shop({}, name=name))

    assert str(refused.value) == "metadata.name is missing"


@pytest.mark.parametrize(
    "changed",
    [
        {"kind": "Store"},
        {"apiVersion": "microshop.dev/v2"},
        {"kind": "Store", "apiVersion": "microshop.dev/v2"},
    ],
)
def test_another_kind_or_version_is_refused_by_name(changed: dict[str, str]) -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_shop({**shop({}), **changed})

    assert str(refused.value) == "expected a microshop.dev/v1alpha1 Shop"


def test_kind_and_version_may_be_left_out_and_spec_too() -> None:
    bare = {"metadata": {"name": "shop", "namespace": "shop"}}

    assert parse_shop(bare) == parse_shop(shop({}))


@pytest.mark.parametrize("body", [[], "x", 1])
def test_a_spec_that_is_not_an_object_is_refused(body: Any) -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_shop(shop(body))

    assert str(refused.value) == "spec must be an object"


def test_a_name_too_long_for_its_children_is_refused_with_the_rule() -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse_name(shop({}, name="a" * 31))

    assert str(refused.value) == (
        f"metadata.name {'a' * 31!r}: a Shop's name is a DNS label (lower-case letters, digits, "
        "'-', starting with a letter) of at most 30 characters, because child names append "
        "suffixes to it"
    )
    assert parse_name(shop({}, name="a" * 30)) == "a" * 30


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [("512Mi", "1Gi"), ("1Gi", "1.5Gi"), ("1G", "1Gi"), ("999M", "1G"), ("1Ti", "1025Gi"),
     ("500m", "1"), ("1k", "1Ki")],
)  # fmt: skip
def test_quantities_compare_by_size_across_suffixes(smaller: str, larger: str) -> None:
    """k8s.io/apimachinery/pkg/api/resource: binary (Ki, Mi, ...) and decimal (k, M, ...)."""
    assert parse_quantity(smaller) < parse_quantity(larger)
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == 2**30


def test_a_malformed_quantity_is_an_error_that_quotes_it() -> None:
    with pytest.raises(ValueError, match=r"^not a quantity: 'lots'$"):
        parse_quantity("lots")
