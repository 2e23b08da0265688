"""Bounds of the v1 contract (docs/events.md, "Bounds"): the limits and character policy the models enforce.

v1 left sizes and ranges open; these bounds are a clarification of v1, chosen so that every valid
event fits the store's columns (`sinks/migrations/*.sql`) and reads well as a Grafana variable or
alert label. Each violation maps to a machine-readable reason in `tokentrail.collectors.events`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

# Token counts land in UInt32 columns (max 4,294,967,295); 10^9 per count is far above any real
# call and keeps a sum of the four counts of one call within UInt32 too.
MAX_TOKENS = 10**9
# latency_ms, ttft_ms, tool.duration_ms: Float64 columns; one day is far beyond any call or tool.
MAX_DURATION_MS = 86_400_000.0
# tool_calls on one output: `calls.tool_call_count` is UInt16.
MAX_TOOL_CALLS = 1024
MAX_TOOLS_OFFERED = 1024

MAX_ID_CHARS = 128  # trace_id, span_id, parent_span_id, session_id, tool call ids
MAX_USER_ID_CHARS = 256
MAX_LABEL_CHARS = 128  # tenant, service, environment, feature, provider, prompt_id, prompt_version, finish_reason
MAX_NAME_CHARS = 256  # model, response_model, tool names, error.type, a message's name
MAX_ROLE_CHARS = 64
MAX_ATTRIBUTES = 128
MAX_ATTRIBUTE_KEY_CHARS = 128
MAX_ATTRIBUTE_VALUE_CHARS = 4096

# Event time: DateTime64(3) holds 1900..2299; the store partitions by month of `ts`.
TS_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive

# Characters a label may not hold: Unicode categories Cc (controls), Cf (format: bidi overrides
# and isolates, zero-width characters, soft hyphen, tags) and Zl/Zp (line and paragraph
# separators), as of Unicode 15.1. Written out rather than derived from `unicodedata` at import
# (a scan of every code point costs ~0.2 s); a test checks it covers Python's own tables.
FORBIDDEN_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_FORBIDDEN = "".join(chr(low) if low == high else f"{chr(low)}-{chr(high)}" for low, high in FORBIDDEN_RANGES)
# The checks run in pydantic's Rust regex engine: a Python validator per label measured ~0.4 µs
# each, ~5 µs per event, two thirds of the rest of validation. The class holds the characters
# themselves, not escapes, so the pattern in the JSON Schema reads the same in Python's `re`, RE2
# and ECMA-262 with the `u` flag.
LABEL_PATTERN = f"^[^{_FORBIDDEN}]*[^\\s{_FORBIDDEN}][^{_FORBIDDEN}]*$"
OPTIONAL_LABEL_PATTERN = f"^$|{LABEL_PATTERN}"
LABEL_POLICY = (
    "no control (Cc), format (Cf: bidi overrides and isolates, zero-width) or line/paragraph separator "
    "characters; not whitespace only; NFC-normalised by the processor"
)


def forbidden_character(value: str) -> str:
    """What makes `value` break the label policy's character rule ('' when nothing does)."""
    for position, char in enumerate(value):
        if any(low <= ord(char) <= high for low, high in FORBIDDEN_RANGES):
            name = unicodedata.name(char, "a control character")
            return f"U+{ord(char):04X} ({name}) at position {position} is not allowed in a label"
    return ""


def _label(max_chars: int, pattern: str) -> Any:
    return Field(
        max_length=max_chars, pattern=pattern, description=f"a label: at most {max_chars} characters; {LABEL_POLICY}"
    )


# Fields that become Grafana variables and alert labels. An optional label may be null, absent
# or "" (the store keeps '' for all three); whitespace only is a mistake either way.
Label = Annotated[str, _label(MAX_LABEL_CHARS, LABEL_PATTERN)]
Name = Annotated[str, _label(MAX_NAME_CHARS, LABEL_PATTERN)]
OptionalLabel = Annotated[str, _label(MAX_LABEL_CHARS, OPTIONAL_LABEL_PATTERN)] | None
OptionalName = Annotated[str, _label(MAX_NAME_CHARS, OPTIONAL_LABEL_PATTERN)] | None


def nfc(value: str) -> str:
    """`value` in Unicode normal form C (returned as is when it already is)."""
    return value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
OptionalId = Annotated[str, Field(max_length=MAX_ID_CHARS)] | None
UserId = Annotated[str, Field(max_length=MAX_USER_ID_CHARS)] | None
Role = Annotated[str, Field(max_length=MAX_ROLE_CHARS)]
Attributes = Annotated[
    dict[
        Annotated[str, Field(max_length=MAX_ATTRIBUTE_KEY_CHARS)],
        Annotated[str, Field(max_length=MAX_ATTRIBUTE_VALUE_CHARS)],
    ],
    Field(max_length=MAX_ATTRIBUTES),
]

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
DurationMs = Annotated[float, Field(ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)]


# The fixed range is checked in pydantic's Rust core (a Python validator would cost ~1 µs per event).
EventTime = Annotated[
    AwareDatetime,
    Field(
        ge=TS_MIN,
        lt=TS_MAX,
        description="RFC 3339 with offset, from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z",
    ),
]


@dataclass(frozen=True, slots=True)
class TsWindow:
    """How far an event's `ts` may lie before or after the time the processor received it."""

    back: timedelta = timedelta(days=400)
    ahead: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.back < timedelta(0) or self.ahead < timedelta(0):
            raise ValueError(f"TsWindow needs back >= 0 and ahead >= 0, got {self.back} and {self.ahead}")

    @classmethod
    def of_days(cls, back: float, ahead: float) -> TsWindow:
        """A window `back` days before and `ahead` days after the receive time (for config flags)."""
        return cls(timedelta(days=back), timedelta(days=ahead))

    def problem(self, ts: datetime, received_at: datetime) -> str:
        """Why `ts` is outside this window around `received_at` ('' when it is inside)."""
        offset = ts - received_at  # a timedelta: no overflow, whatever the two dates
        if -self.back <= offset <= self.ahead:
            return ""
        side = f"{-offset} before" if offset < timedelta(0) else f"{offset} after"
        return (
            f"ts {ts.isoformat()} is {side} the receive time {received_at.isoformat()}; "
            f"the window is {self.back} before to {self.ahead} after"
        )


DEFAULT_TS_WINDOW = TsWindow()
