"""Whatever a client sends the HTTP API, on either store, it answers with a status that says
whose the problem is and one short line, as problem details, never a 500: generated touchpoint
bodies (good records with a field replaced, and any JSON at all) and generated text in every
parameter. Every good touchpoint of an accepted request is recorded, once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st

from engine.settings import Settings
from journey.api import create_app
from tests.unit.test_files_fuzz import FIELDS, FUZZ

# What a client's mistake may be answered with: not found, a conflict, too large, invalid.
REFUSALS = {404, 409, 413, 422}
# What JSON can carry (no infinities: a client cannot send them).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
# Text a client may put in a parameter: anything, NUL and line breaks included.
texts = st.text(st.characters(codec="utf-8"), max_size=30)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as made:
        yield made


def record(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"fz-{number}",
        "customer_id": f"FZ-{number % 3}",
        "channel": "web",
        "type": "page_view",
        "occurred_at": "2026-03-02T09:00:00Z",
        "source": "web-analytics",
        "attributes": {"page": "pricing"},
        **changes,
    }


def assert_answered(response: Any, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code
        assert {"type", "title", "detail"} <= set(problem)
        detail = problem["detail"]
        assert isinstance(detail, str)
        assert "\n" not in detail
        assert len(detail) < 600, detail


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), json_values), max_size=3),
    number=st.integers(0, 10**9),
)
@example(changes=[("source", "web\x00")], number=1)
@example(changes=[("customer_id", "C\x00")], number=2)
def test_any_touchpoint_posted_is_recorded_or_refused_in_one_line(
    client: TestClient, changes: list[tuple[str, Any]], number: int
) -> None:
    body = [record(number), record(number + 1, **dict(changes))]

    response = client.post("/api/touchpoints", json=body)

    assert_answered(response, {202} | REFUSALS)
    if response.status_code == 202:
        assert response.json()["recorded"] + response.json()["duplicates"] == 2
        # Read once the views include it (a post of duplicates only wrote nothing new).
        position = response.json()["position"]
        after = {} if position is None else {"after": position}
        customer = client.get(f"/api/customers/{body[0]['customer_id']}", params=after)
        assert customer.status_code == 200


@FUZZ
@given(body=json_values)
@example(body=[None, None, "0" * 600])  # was refused quoting itself, in a list of errors
def test_any_json_body_is_refused_in_one_line(client: TestClient, body: Any) -> None:
    assert_answered(client.post("/api/touchpoints", json=body), {202} | REFUSALS)


@FUZZ
@given(value=texts)
@example(value="\x00")
@example(value="C-1\nC-2")
def test_any_text_in_any_parameter_is_answered_without_a_fault(
    client: TestClient, value: str
) -> None:
    for path, params in (
        ("/api/customers", {"q": value, "rep": value, "stage": value, "friction": value}),
        ("/api/frictions", {"rep": value, "type": value}),
        ("/api/frictions/counts", {"by": value}),
        ("/api/actions", {"owner": value, "customer": value}),
    ):
        assert_answered(client.get(path, params=params), {200} | REFUSALS)
    quoted = quote(value, safe="")
    for path in (f"/api/customers/{quoted}", f"/api/actions/{quoted}"):
        if value.strip():
            assert_answered(client.get(path), {200} | REFUSALS)
    outcome = client.post("/api/actions/nope/outcome", json={"status": value, "reason": value})
    assert_answered(outcome, REFUSALS)
