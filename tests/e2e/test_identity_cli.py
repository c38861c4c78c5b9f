"""`journey identity` as a user runs it: the identifiers a customer's touchpoints carried,
found by any of them in any form a channel writes it, and the ones two customers share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import journey, write_jsonl


def touchpoint(event_id: str, customer_id: str, at: str, **identifiers: str) -> str:
    record = {
        "event_id": event_id,
        "customer_id": customer_id,
        "channel": "email" if "email" in identifiers else "phone",
        "type": "email_inbound" if "email" in identifiers else "call_inbound",
        "occurred_at": at,
        "source": "crm",
        **identifiers,
    }
    return json.dumps(record)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("identity")
    lines = [
        touchpoint("e1", "C-1", "2026-03-01T09:00:00Z", email="Anna@Example.com"),
        touchpoint("e2", "C-1", "2026-03-02T09:00:00Z", phone="+45 20 12 34 56"),
        # The email platform files Anna's address under another customer: a conflict.
        touchpoint("e3", "C-2", "2026-03-03T09:00:00Z", email="anna@example.com"),
        touchpoint("e4", "C-3", "2026-03-04T09:00:00Z", phone="0045 30 00 00 01"),
    ]
    ingested = journey("ingest", str(write_jsonl(data_dir / "t.jsonl", lines)), data_dir=data_dir)
    assert ingested.returncode == 0, ingested.stderr
    return data_dir


def test_a_customer_is_found_by_any_identifier_in_any_form_a_channel_writes_it(
    data_dir: Path,
) -> None:
    shown = journey("identity", "show", "--json", "phone:+4520123456", data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    person = json.loads(shown.stdout)
    assert person["person"] == "C-1"
    assert [(i["kind"], i["value"]) for i in person["identifiers"]] == [
        ("customer_id", "C-1"),
        ("email", "anna@example.com"),
        ("phone", "+4520123456"),
    ]
    assert [link["touchpoint"] for link in person["links"]] == ["e1", "e2"]
    customer = journey("customer", "--json", "email:ANNA@example.com", data_dir=data_dir)
    assert customer.returncode == 0, customer.stderr
    assert json.loads(customer.stdout)["customer_id"] == "C-1"


def test_an_identifier_two_customers_share_is_a_conflict_and_joins_no_one(data_dir: Path) -> None:
    listed = journey("identity", "conflicts", "--json", data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    [conflict] = json.loads(listed.stdout)
    assert conflict["people"] == ["C-2", "C-1"]
    assert conflict["link"]["touchpoint"] == "e3"
    assert conflict["link"]["b"] == "email:anna@example.com"
    shown = journey("identity", "show", "C-2", data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "C-2, known by 1 identifier" in shown.stdout
    assert "Conflict: touchpoint e3 of C-2, 2026-03-03 09:00 UTC," in shown.stdout
    assert "carried email:anna@example.com, which C-1 already had: not joined" in shown.stdout
    table = journey("identity", "conflicts", data_dir=data_dir)
    assert "1 conflict:" in table.stdout


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (
            "email:nobody@example.com",
            "error: no touchpoint recorded names email:nobody@example.com",
        ),
        ("phone:20 12 34 56", "has no country code, and no [identity] region is set"),
        ("C-404", "error: no touchpoint recorded names customer_id:C-404"),
    ],
)
def test_an_unknown_or_unreadable_identifier_is_one_line(
    data_dir: Path, who: str, message: str
) -> None:
    shown = journey("identity", "show", who, data_dir=data_dir)
    assert shown.returncode != 0
    assert message in shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1
    assert "Traceback" not in shown.stderr


def test_a_merge_cancels_the_actions_of_the_id_it_ends_and_no_trigger_gets_a_second(
    tmp_path: Path,
) -> None:
    """H-2's failed form and call got a call-back; merged into H-1, H-2's call-back is
    cancelled with the reason, and H-1 gets no action for the same touchpoints, neither while
    the merge holds nor after it is undone. (H-1's own email, unanswered by the time of H-2's
    call, may get one: the merged journey's time moved on.)"""
    lines = [
        touchpoint("h-1", "H-1", "2026-03-01T09:00:00Z", email="hugo@example.com"),
        json.dumps(
            {
                "event_id": "h-2",
                "customer_id": "H-2",
                "channel": "web",
                "type": "form_failed",
                "occurred_at": "2026-03-02T09:00:00Z",
                "source": "web-analytics",
                "outcome": "negative",
                "attributes": {"form": "quote"},
            }
        ),
        touchpoint("h-3", "H-2", "2026-03-02T09:20:00Z", phone="+4540000000"),
    ]
    data_dir = tmp_path / "data"
    ingested = journey("ingest", str(write_jsonl(tmp_path / "h.jsonl", lines)), data_dir=data_dir)
    assert ingested.returncode == 0, ingested.stderr
    (call_back,) = actions(data_dir, "H-2")
    assert (call_back["rule"], call_back["status"]) == ("call_back_channel_jump", "open")

    merged = journey("identity", "merge", "H-2", "H-1", "--reason", "one", data_dir=data_dir)
    assert merged.returncode == 0, merged.stderr
    (cancelled,) = actions(data_dir, "H-2")
    assert cancelled["action_id"] == call_back["action_id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_reason"] == "the customer's journey is now part of another person's"
    assert triggered_by(data_dir, "H-1", ["h-2", "h-3"]) == []

    merge_id = merged.stdout.split("(merge ")[1].split(";")[0]
    undone = journey("identity", "unmerge", merge_id, "--reason", "two", data_dir=data_dir)
    assert undone.returncode == 0, undone.stderr
    assert [a["status"] for a in actions(data_dir, "H-2")] == ["cancelled"]
    assert triggered_by(data_dir, "H-1", ["h-2", "h-3"]) == []


def actions(data_dir: Path, customer: str) -> list[dict[str, Any]]:
    listed = journey("actions", "--all", "--json", "--customer", customer, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


def triggered_by(data_dir: Path, customer: str, events: list[str]) -> list[dict[str, Any]]:
    return [a for a in actions(data_dir, customer) if a["triggering_event_ids"] == events]
