"""The words of synthetic traffic: user messages, answers, tool arguments and tool results per feature.

Kept apart so that the generator's modules read as the structure of traffic (traces, scenarios,
noise) and this one as its words. Every function takes the caller's `random.Random`, so text is
reproducible for a seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from .catalog import CARRIERS, ERROR_CODES, LABELS, PATHS, PRODUCTS, SUBJECTS, TABLES, TOPICS


def digits(rng: random.Random, n: int) -> str:
    return f"{rng.randrange(10**n):0{n}d}"


def hex_digits(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


SLOTS: dict[str, Callable[[random.Random], str]] = {
    "order": lambda r: f"ORD-2026-{digits(r, 7)}",
    "ticket": lambda r: f"TCK-{digits(r, 5)}",
    "product": lambda r: r.choice(PRODUCTS),
    "qty": lambda r: str(r.randint(2, 40)),
    "amount": lambda r: f"${r.randint(9, 480)}.{r.randint(0, 99):02d}",
    "days": lambda r: str(r.randint(2, 21)),
    "carrier": lambda r: r.choice(CARRIERS),
    "pr": lambda r: str(r.randint(1200, 9800)),
    "version": lambda r: f"v{r.randint(1, 4)}.{r.randint(0, 30)}.{r.randint(0, 12)}",
    "path": lambda r: r.choice(PATHS),
    "line": lambda r: str(r.randint(12, 880)),
    "sha": lambda r: hex_digits(r, 40),
    "sha256": lambda r: hex_digits(r, 64),
    "err": lambda r: r.choice(ERROR_CODES),
    "table": lambda r: r.choice(TABLES),
    "topic": lambda r: r.choice(TOPICS),
    "subject": lambda r: r.choice(SUBJECTS),
    "pct": lambda r: str(r.randint(3, 97)),
    "n": lambda r: str(r.randint(3, 9000)),
    "service": lambda r: r.choice(["checkout", "payments", "search", "auth", "notifications"]),
}


class Slots(dict[str, str]):
    """Fills {slot}s lazily and remembers them: share one between a question and its answer."""

    def __init__(self, rng: random.Random):
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = self[key] = SLOTS[key](self.rng)
        return value


def compose(slots: Slots, *parts: list[str]) -> str:
    """One template from each list, joined: few templates, many distinct texts."""
    text = ""
    for options in parts:
        piece = slots.rng.choice(options).format_map(slots)
        sep = "" if not text or text.endswith("\n") or piece.startswith("\n") else " "
        text = text + sep + piece
    return text


# --- user messages and outputs per feature -----------------------------------------------------

USER = {
    "order-support": [
        [
            "Hi, my order {order} for the {product} still hasn't arrived after {days} days.",
            "I was charged {amount} twice for order {order}.",
            "The {product} from order {order} arrived damaged, the box was crushed.",
            "I ordered {qty} units of the {product} ({order}) but only received one.",
            "I sent back order {order} with {carrier} {days} days ago and see no refund yet.",
            "Can I still change the delivery address on {order}?",
        ],
        [
            "Can you check what's going on?",
            "I'd like a refund please.",
            "What are my options?",
            "Please sort this out quickly.",
            "Your website showed {err} when I tried to do it myself.",
            "How long will this take?",
        ],
    ],
    "code-review": [
        [
            "Review PR #{pr}: it bumps the payments client to {version} and refactors {path}.",
            "Please review PR #{pr}; the new retry logic in {path} should back off on {err}.",
            "PR #{pr} changes {path} line {line}; CI is red on commit {sha}.",
            "Check PR #{pr} for thread-safety issues in {path}.",
        ],
        [
            "Focus on error handling.",
            "The release artifact digest is sha256:{sha256}.",
            "We deploy {version} tomorrow, so flag anything risky.",
            "Tests take about {days} minutes.",
        ],
    ],
    "sql-analyst": [
        [
            "What was weekly revenue by region over the last {days} weeks?",
            "How many customers churned last month compared to the month before, split by plan?",
            "Find the top {qty} products by refund rate this quarter.",
            "Which {table} rows changed the most since release {version}?",
            "What share of orders shipped late ({pct}% target) in each warehouse?",
        ],
        ["Use the {table} table.", "Keep it to one query if you can.", "A short answer is fine.", ""],
    ],
    "refund-drafts": [
        [
            "Draft a reply: the customer's {product} (order {order}) arrived {days} days late. Refund {amount}.",
            "Draft a refund confirmation for order {order}: {qty} items returned, total {amount}.",
            "Write to a customer whose {product} was out of stock after payment; refund {amount} for {order}.",
        ],
        ["Tone: apologetic but brief.", "They were polite, keep it warm.", "They are upset; be direct.", ""],
    ],
    "search-summaries": [
        [
            'Query: "{topic}". Results: [1] An overview of {topic} with {n} benchmarks.',
            'Query: "{topic} best practices". Results: [1] A {days}-step guide to {topic}.',
            'Query: "is {topic} worth it". Results: [1] A forum thread with {n} replies about {topic}.',
        ],
        [
            "[2] Vendor docs for {version} covering {topic}. [3] A blog post measuring a {pct}% improvement.",
            "[2] A changelog entry for {version}. [3] A survey where {pct}% of teams report problems.",
        ],
    ],
    "ticket-triage": [
        [
            "Subject: {subject}\n\nHello, regarding order {order}:",
            "Subject: {subject}\n\nHi team,",
            "Subject: {subject} ({ticket})\n\n",
        ],
        [
            "I was billed {amount} but the plan says less.",
            "the parcel tracking stopped {days} days ago.",
            "I get {err} every time I log in.",
            "export to CSV crashes on files over {n} rows.",
            "it would be great to have SSO with our IdP.",
            "the invoice for {order} lacks our VAT number.",
        ],
    ],
    "sales-assistant": [
        [
            "Do you offer volume discounts if we buy {qty} seats?",
            "How does the Pro plan compare to Enterprise on SSO and audit logs?",
            "Can we get a trial for {days} days before we commit?",
            "Is there an EU data residency option?",
            "What does onboarding look like for a team of {qty}?",
        ],
        ["", "We're currently on a competitor.", "Budget is approved for this quarter."],
    ],
    "internal-qa": [
        [
            "How do I rotate the staging database credentials?",
            "Where is the runbook for incident {ticket}?",
            "What's the on-call escalation policy for the {service} service?",
            "Why does the {service} deploy fail with {err}?",
            "Which dashboard shows p95 latency for {service}?",
        ],
        ["", "Asking for the migration to {version}.", "It's blocking a release."],
    ],
}
OUTPUT = {
    "order-support": [
        [
            "I've checked order {order}: it's with {carrier} and should arrive within {days} days.",
            "I've issued a refund of {amount} for order {order}; it will show in 5-7 business days.",
            "Order {order} is eligible for a free replacement, which ships today.",
            "I can see the duplicate charge of {amount} on {order} and have reversed it.",
        ],
        ["Anything else I can help with?", "Sorry for the trouble.", "Thanks for your patience.", ""],
    ],
    "code-review": [
        [
            "Two issues: {path} line {line} swallows {err} without retrying, and the new client {version} "
            "is not pinned.",
            "The change looks correct, but {path} line {line} reads shared state without the lock.",
            "Tests fail on commit {sha}: the fixture still expects {version}.",
        ],
        ["Requesting changes.", "Approve once the test is fixed.", "Minor: rename the helper for clarity."],
    ],
    "sql-analyst": [
        [
            "Revenue peaked at ${n}k in week {days}; EMEA grew {pct}% while APAC was flat.",
            "{n} customers churned last month, {pct}% of them on the Starter plan.",
            "The {table} table shows {n} affected rows; the top {qty} account for {pct}% of the total.",
        ],
        ["The query scanned the last 90 days only.", "Numbers exclude test accounts.", ""],
    ],
    "refund-drafts": [
        [
            "Subject: Your refund for order {order}\n\nHello,\n\nWe're sorry your {product} arrived late. We "
            "have refunded {amount}; it will reach your account in 5-7 business days.",
            "Subject: Refund confirmed ({order})\n\nHello,\n\nThank you for returning the items. Your refund "
            "of {amount} is on its way and should arrive within 5-7 business days.",
        ],
        ["\n\nThe Support Team", "\n\nKind regards,\nThe Support Team"],
    ],
    "search-summaries": [
        [
            "Most results agree that {topic} pays off at scale [1][2], with a {pct}% gain reported in [3].",
            "The results disagree: [1] recommends {topic} while [3] found problems in {pct}% of cases.",
            "[2] is the authoritative source ({version}); [1] and [3] add {n} practical examples.",
        ],
        ["", "Version {version} changed the defaults [2]."],
    ],
    "sales-assistant": [
        [
            "Yes, for {qty} seats we offer {pct}% off the list price on annual billing.",
            "Enterprise adds SSO, SCIM and audit logs; Pro has SSO only.",
            "We can set up a {days}-day trial with full features.",
            "Yes, EU customers are hosted in our eu-central-1 and eu-west-1 regions.",
        ],
        ["Would you like to book a demo call?", "Happy to send the security whitepaper.", ""],
    ],
    "internal-qa": [
        [
            "Use the `rotate-creds` job in the {service} pipeline; see the runbook linked from {ticket}.",
            "The {service} deploy fails with {err} when the migration for {version} has not run.",
            "Page the {service} primary first, then the secondary after 15 minutes.",
            "The p95 panel is on the '{service} overview' dashboard, row 'Latency'.",
        ],
        ["", "Runbook: https://wiki.internal/runbooks/{service}"],
    ],
}


def user_text(feature: str, rng: random.Random, slots: Slots | None = None) -> str:
    return compose(slots or Slots(rng), *USER[feature]).strip()


def output_text(feature: str, rng: random.Random, slots: Slots | None = None) -> str:
    if feature == "ticket-triage":
        return label_text(rng)
    return compose(slots or Slots(rng), *OUTPUT[feature]).strip()


def label_text(rng: random.Random) -> str:
    """Classification answers repeat by design: few labels, many inputs."""
    return json.dumps({"category": rng.choice(LABELS), "priority": rng.choice(("p1", "p2", "p3"))})


# --- tools: arguments and results -------------------------------------------------------------


def tool_args(name: str, rng: random.Random) -> dict[str, Any]:
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "search_orders": lambda: {"query": rng.choice(PRODUCTS), "status": rng.choice(["open", "any"])},
        "get_order_status": lambda: {"order_id": SLOTS["order"](rng)},
        "get_shipping_quote": lambda: {"order_id": SLOTS["order"](rng), "carrier": rng.choice(CARRIERS)},
        "issue_refund": lambda: {"order_id": SLOTS["order"](rng), "amount": round(rng.uniform(5, 199), 2)},
        "list_changed_files": lambda: {"pr": int(SLOTS["pr"](rng))},
        "read_file": lambda: {"path": rng.choice(PATHS), "start_line": rng.randint(1, 400)},
        "run_tests": lambda: {"target": rng.choice(PATHS), "seed": rng.randint(1, 99999)},
        "search_code": lambda: {
            "query": f"{rng.choice(['retry', 'backoff', 'lock', 'timeout'])}_{rng.randint(1, 999)}"
        },
        "list_tables": lambda: {"database": rng.choice(["analytics", "billing"]), "like": f"%{rng.choice(TABLES)}%"},
        "describe_table": lambda: {"table": rng.choice(TABLES), "sample_rows": rng.randint(0, 5)},
        "run_sql": lambda: {
            "sql": f"SELECT region, sum(amount) FROM {rng.choice(TABLES)} "
            f"WHERE day >= today() - {rng.randint(7, 90)} GROUP BY region LIMIT 100"
        },
    }
    return makers[name]()


def tool_result(name: str, args: dict[str, Any], rng: random.Random) -> Any:
    if name in ("get_order_status", "get_shipping_quote", "issue_refund"):
        return {
            "order_id": args.get("order_id"),
            "status": rng.choice(["in_transit", "delivered", "refunded"]),
            "carrier": rng.choice(CARRIERS),
            "amount": args.get("amount", round(rng.uniform(9, 480), 2)),
        }
    if name == "search_orders":
        return [
            {"order_id": SLOTS["order"](rng), "total": round(rng.uniform(9, 480), 2)} for _ in range(rng.randint(1, 3))
        ]
    if name in ("list_changed_files", "search_code"):
        return [{"path": p, "line": rng.randint(1, 880)} for p in rng.sample(PATHS, rng.randint(1, 4))]
    if name == "read_file":
        return (
            f"def charge(client, amount):\n    # {rng.choice(ERROR_CODES)} handled by caller\n"
            f"    return client.post('/charges', json={{'amount': amount}}, timeout={rng.randint(2, 30)})\n"
        )
    if name == "run_tests":
        return {"passed": rng.randint(50, 900), "failed": rng.choice([0, 0, 1, 2]), "duration_s": rng.randint(20, 400)}
    if name in ("list_tables", "describe_table"):
        return {"tables": rng.sample(TABLES, 3), "columns": ["id", "day", "region", "amount", "plan"]}
    return {
        "rows": [[r, rng.randint(1000, 90000)] for r in ("EMEA", "AMER", "APAC")],
        "elapsed_ms": rng.randint(30, 4000),
    }
