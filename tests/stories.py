"""The customer stories of the journey engine, as the touchpoints channel systems would send,
in the order they would arrive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.conftest import DAY, HOUR, T0


def tp(
    event_id: str, customer: str, channel: str, kind: str, at: int, **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": customer,
        "channel": channel,
        "type": kind,
        "occurred_at": at,
        "source": {
            "web": "web-analytics",
            "email": "email-platform",
            "phone": "telephony",
            "visit": "crm",
        }[channel],
    }
    attributes = extra.pop("attributes", {})
    record.update(extra)
    record["attributes"] = attributes
    return record


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def warm_referral_gone_cold() -> list[dict[str, Any]]:
    c = "S1-ANNA"
    return [
        tp(
            "s1-1",
            c,
            "email",
            "referral",
            T0,
            attributes={"referred_by": "C-17", "referrer_location": "A"},
        ),
        tp(
            "s1-2",
            c,
            "phone",
            "call_outbound",
            T0 + 2 * DAY,
            rep_id="kathrine",
            outcome="positive",
            # Kathrine books the tour for the day Peter stands in for her at location B.
            attributes={
                "booked": "tour",
                "location": "B",
                "booked_for": iso(T0 + 7 * DAY),
                "host": "peter",
            },
        ),
        tp("s1-3", c, "web", "page_view", T0 + 3 * DAY, attributes={"page": "amenities"}),
        tp("s1-4", c, "web", "page_view", T0 + 3 * DAY + HOUR, attributes={"page": "programmes"}),
        tp(
            "s1-5", c, "web", "page_view", T0 + 3 * DAY + 2 * HOUR, attributes={"page": "amenities"}
        ),
        tp(
            "s1-6",
            c,
            "visit",
            "tour",
            T0 + 7 * DAY,
            rep_id="peter",
            outcome="negative",
            attributes={"location": "B", "content": "same as website"},
        ),
    ]


def digital_to_phone() -> list[dict[str, Any]]:
    c = "S2-BEN"
    return [
        tp("s2-1", c, "web", "page_view", T0, attributes={"page": "pricing"}),
        tp("s2-2", c, "web", "page_view", T0 + 10 * 60_000, attributes={"page": "pricing"}),
        tp("s2-3", c, "web", "form_submitted", T0 + 15 * 60_000, attributes={"form": "quote"}),
        tp(
            "s2-4",
            c,
            "web",
            "form_failed",
            T0 + 16 * 60_000,
            outcome="negative",
            attributes={"form": "quote", "error": "server"},
        ),
        tp("s2-5", c, "phone", "call_inbound", T0 + 50 * 60_000, attributes={"line": "sales"}),
    ]


def bank_customer_on_two_channels() -> list[dict[str, Any]]:
    c = "S3-CARLA"
    start = T0 - 400 * DAY
    return [
        tp("s3-1", c, "visit", "contract_signed", start, rep_id="li", outcome="positive"),
        tp("s3-2", c, "email", "referral_given", start + 200 * DAY, outcome="positive"),
        tp(
            "s3-3",
            c,
            "visit",
            "visit",
            T0,
            rep_id="li",
            outcome="positive",
            attributes={"branch": "central"},
        ),
        tp(
            "s3-4",
            c,
            "phone",
            "call_inbound",
            T0 + 5 * DAY,
            outcome="negative",
            attributes={"ivr": "stuck", "wait_seconds": "840"},
        ),
        tp(
            "s3-5",
            c,
            "phone",
            "call_inbound",
            T0 + 6 * DAY,
            outcome="negative",
            attributes={"ivr": "stuck", "wait_seconds": "1260"},
        ),
        tp(
            "s3-6",
            c,
            "email",
            "complaint",
            T0 + 6 * DAY + 3 * HOUR,
            outcome="negative",
            attributes={"topic": "phone_service"},
        ),
    ]


def pricing_loop() -> list[dict[str, Any]]:
    c = "S4-DAN"
    views = [
        tp(f"s4-{i}", c, "web", "page_view", T0 + i * 40 * HOUR, attributes={"page": "pricing"})
        for i in range(6)
    ]
    clicks = [
        tp(
            f"s4-c{i}",
            c,
            "email",
            "email_clicked",
            T0 + (7 + i) * DAY,
            attributes={"link": "comparison_guide"},
        )
        for i in range(2)
    ]
    return views + clicks


def late_visit_log() -> list[dict[str, Any]]:
    """Arrival order: Tuesday's and Wednesday's emails, then Monday's visit, logged Thursday."""
    c = "S5-EVA"
    monday = T0
    return [
        tp("s5-0", c, "web", "page_view", monday - 3 * DAY, attributes={"page": "home"}),
        tp("s5-2", c, "email", "email_opened", monday + DAY, attributes={"campaign": "recap"}),
        tp("s5-3", c, "email", "email_clicked", monday + 2 * DAY, attributes={"link": "offer"}),
        tp("s5-1", c, "visit", "visit", monday + 2 * HOUR, rep_id="amira", outcome="positive"),
    ]


def happy_path() -> list[dict[str, Any]]:
    c = "S6-FIN"
    return [
        tp("s6-1", c, "web", "page_view", T0, attributes={"page": "home"}),
        tp("s6-2", c, "web", "page_view", T0 + DAY, attributes={"page": "case_study"}),
        tp("s6-3", c, "web", "page_view", T0 + 2 * DAY, attributes={"page": "programmes"}),
        tp("s6-4", c, "web", "page_view", T0 + 3 * DAY, attributes={"page": "pricing"}),
        tp("s6-5", c, "web", "demo_requested", T0 + 3 * DAY + HOUR),
        tp("s6-6", c, "visit", "demo", T0 + 6 * DAY, rep_id="jonas", outcome="positive"),
        tp("s6-7", c, "email", "proposal_sent", T0 + 8 * DAY, rep_id="jonas", outcome="positive"),
        tp("s6-8", c, "phone", "call_outbound", T0 + 9 * DAY, rep_id="jonas", outcome="positive"),
        tp(
            "s6-9", c, "visit", "contract_signed", T0 + 14 * DAY, rep_id="jonas", outcome="positive"
        ),
        tp("s6-10", c, "email", "referral_given", T0 + 104 * DAY, outcome="positive"),
    ]


def kathrines_morning() -> list[dict[str, Any]]:
    """Two more of Kathrine's customers on the morning the other stories end (the journey's
    clock is at 09:00 on 14 June): one to call back today, one to thank later this week."""
    morning = T0 + 104 * DAY  # 2026-06-14T09:00Z, S6-FIN's referral
    gus, hedda = "S7-GUS", "S8-HEDDA"
    return [
        tp("s7-1", gus, "phone", "call_outbound", morning - DAY, rep_id="kathrine"),
        tp(
            "s7-2",
            gus,
            "web",
            "form_failed",
            morning - 70 * 60_000,
            outcome="negative",
            attributes={"form": "quote"},
        ),
        tp("s7-3", gus, "phone", "call_inbound", morning - 50 * 60_000),
        tp("s8-1", hedda, "phone", "call_outbound", morning - 2 * DAY, rep_id="kathrine"),
        tp("s8-2", hedda, "email", "referral_given", morning - 30 * 60_000, outcome="positive"),
    ]


def anonymous_reader_turns_caller() -> list[dict[str, Any]]:
    """Greta is in the CRM with her email address and phone number. She reads the website
    without logging in (the web analytics system knows only its cookie), fills the quote
    form, which fails, and calls 20 minutes later (the telephony system knows only her
    number). No channel but the CRM knows her customer id."""
    c = "S7-GRETA"
    cookie, email, phone = "ck-7f3a", "Greta.Holm@example.com", "+45 31 41 59 26"

    def anonymous(event_id: str, channel: str, kind: str, at: int, **extra: Any) -> dict[str, Any]:
        record = tp(event_id, c, channel, kind, at, **extra)
        del record["customer_id"]
        return record

    return [
        tp("s7-0", c, "email", "newsletter_signup", T0 - 30 * DAY, email=email, phone=phone),
        anonymous("s7-1", "web", "page_view", T0, cookie_id=cookie, attributes={"page": "pricing"}),
        anonymous(
            "s7-2",
            "web",
            "page_view",
            T0 + 5 * 60_000,
            cookie_id=cookie,
            attributes={"page": "pricing"},
        ),
        anonymous(
            "s7-3",
            "web",
            "form_failed",
            T0 + 16 * 60_000,
            cookie_id=cookie,
            email=email.lower(),
            outcome="negative",
            attributes={"form": "quote", "error": "server"},
        ),
        anonymous(
            "s7-4",
            "phone",
            "call_inbound",
            T0 + 36 * 60_000,
            phone="0045 31415926",
            attributes={"line": "sales"},
        ),
    ]


STORIES = {
    "S1-ANNA": warm_referral_gone_cold,
    "S2-BEN": digital_to_phone,
    "S3-CARLA": bank_customer_on_two_channels,
    "S4-DAN": pricing_loop,
    "S5-EVA": late_visit_log,
    "S6-FIN": happy_path,
}


def recorded_stories(folder: Path) -> Path:
    """A data directory with every story recorded through `journey ingest`, and the clock
    moved twelve days past the first touchpoints (the tour's follow-up window has closed)."""
    from click.testing import CliRunner

    from journey.cli import cli

    stories = folder / "stories.jsonl"
    stories.write_text("".join(json.dumps(r) + "\n" for story in STORIES.values() for r in story()))
    for args in (["ingest", str(stories)], ["tick", "--at", "2026-03-14T09:00:00Z"]):
        result = CliRunner().invoke(cli, ["--data-dir", str(folder / "data"), *args])
        assert result.exit_code == 0, result.output
    return folder / "data"
