"""Value normalisation per ClickHouse column type, before anything is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tokentrail.sinks.columns import coercer_for

UTC = UTC


@pytest.mark.parametrize(
    "type_name, value, expected",
    [
        ("String", None, ""),
        ("LowCardinality(String)", "x", "x"),
        ("String", b"caf\xc3\xa9", "café"),
        ("String", {"a": [1, "é"]}, '{"a":[1,"é"]}'),
        ("String", 3, "3"),
        ("UInt32", None, 0),
        ("UInt32", 5.0, 5),
        ("UInt16", True, 1),
        ("Bool", None, False),
        ("Bool", 1, True),
        ("Float64", 2, 2.0),
        ("Nullable(Float64)", None, None),
        ("Nullable(Float64)", 1, 1.0),
        ("Array(LowCardinality(String))", None, []),
        ("Array(LowCardinality(String))", ("a", None), ["a", ""]),
        ("Decimal(18, 12)", None, Decimal(0)),
        ("Decimal(18, 12)", 0.1, Decimal("0.100000000000")),
        ("Decimal(18, 12)", "1.0000000000005", Decimal("1.000000000000")),
        ("Decimal(18, 12)", Decimal("1.0000000000015"), Decimal("1.000000000002")),
    ],
)
def test_coercion(type_name, value, expected):
    """Each value becomes what the column stores, with the documented defaults for None."""
    got = coercer_for(type_name)(value)
    assert got == expected and type(got) is type(expected)


def test_uuid_and_datetime_forms():
    """UUIDs and timestamps accept their string forms; naive and epoch values are UTC."""
    u = uuid.uuid4()
    assert coercer_for("UUID")(str(u)) == u
    to_ts = coercer_for("DateTime64(3, 'UTC')")
    aware = datetime(2026, 11, 20, 9, 1, tzinfo=timezone(timedelta(hours=2)))
    assert to_ts(aware) is aware
    assert to_ts(datetime(2026, 11, 20, 9, 1)) == datetime(2026, 11, 20, 9, 1, tzinfo=UTC)
    assert to_ts("2026-11-20T09:01:00.100Z") == datetime(2026, 11, 20, 9, 1, 0, 100000, tzinfo=UTC)
    assert to_ts(0) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "type_name, value",
    [
        ("UUID", None),
        ("UUID", "nope"),
        ("DateTime64(3, 'UTC')", None),
        ("DateTime64(3, 'UTC')", "yesterday"),
        ("DateTime64(3, 'UTC')", "0001-01-01T00:00:00+00:00"),
        ("DateTime64(3, 'UTC')", "1899-12-31T23:59:59+00:00"),
        ("DateTime64(3, 'UTC')", "2300-01-01T00:00:00+00:00"),
        ("DateTime64(3, 'UTC')", 1e300),
        ("DateTime('UTC')", "1969-12-31T23:59:59+00:00"),
        ("DateTime('UTC')", "2106-02-07T06:28:16+00:00"),
        ("UInt32", 5_000_000_000_000),
        ("UInt32", 1e308),
        ("UInt32", -1),
        ("UInt16", 70000),
        ("UInt32", "12"),
        ("UInt32", 1.5),
        ("Float64", "1"),
        ("Bool", "yes"),
        ("Decimal(18, 12)", Decimal("1e6")),
        ("Decimal(18, 12)", "abc"),
        ("Decimal(18, 12)", float("nan")),
        ("String", object()),
        ("Array(String)", "abc"),
    ],
)
def test_bad_values_raise_value_error(type_name, value):
    """Values that cannot be stored faithfully are a ValueError, never a silent substitute."""
    with pytest.raises(ValueError):
        coercer_for(type_name)(value)


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("DateTime64(3, 'UTC')", "1900-01-01T00:00:00+00:00"),
        ("DateTime64(3, 'UTC')", "2299-12-31T23:59:59+00:00"),
        ("DateTime('UTC')", "1970-01-01T00:00:00+00:00"),
        ("UInt32", 4_294_967_295),
    ],
)
def test_range_edges_are_accepted(type_name, value):
    """The first and last values a type holds pass: the bounds are inclusive, not off by one."""
    coercer_for(type_name)(value)
