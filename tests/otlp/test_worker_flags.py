"""`tokentrail worker` OTLP flags: off by default, validated before anything connects."""

from __future__ import annotations

import pytest

from tokentrail.stream.faust_worker import parse_args
from tokentrail.stream.otlp import OtlpSettings


def test_otlp_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --otlp-topic (or $TOKENTRAIL_OTLP_TOPIC) the worker reads no OTLP topic."""
    monkeypatch.delenv("TOKENTRAIL_OTLP_TOPIC", raising=False)
    config = parse_args(["--kafka", "k:9092"])
    assert config.otlp_topic is None and config.otlp_settings() is None


def test_flags_become_pipeline_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Topic, encoding and default tenant reach the pipeline's OtlpSettings; the topic may come from the environment."""
    config = parse_args(
        ["--kafka", "k:9092", "--otlp-topic", "otlp_spans", "--otlp-encoding", "proto", "--otlp-default-tenant", "ops"]
    )
    settings = config.otlp_settings()
    assert isinstance(settings, OtlpSettings)
    assert (settings.topics, settings.encoding, settings.mapping.default_tenant) == (
        frozenset({"otlp_spans"}),
        "proto",
        "ops",
    )
    monkeypatch.setenv("TOKENTRAIL_OTLP_TOPIC", "from_env")
    assert parse_args(["--kafka", "k:9092"]).otlp_topic == "from_env"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--otlp-topic", "tokentrail.events"], "not the events topic"),
        (["--otlp-topic", "otlp_spans", "--otlp-default-tenant", "  "], "must not be blank"),
    ],
)
def test_bad_otlp_flags_fail_at_startup(argv: list[str], message: str) -> None:
    """The OTLP topic cannot be the events topic; the default tenant cannot be blank."""
    with pytest.raises(ValueError, match=message):
        parse_args(["--kafka", "k:9092", *argv])


def test_unknown_encoding_is_refused() -> None:
    """--otlp-encoding takes auto, proto or json only."""
    with pytest.raises(SystemExit):
        parse_args(["--kafka", "k:9092", "--otlp-encoding", "zipkin"])
