"""An evaluation set for redaction independent of the tuning corpus: Faker values in telemetry shapes."""
