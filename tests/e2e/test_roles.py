"""The HTTP API with a tokens file: each role reads exactly what it may (a rep their customers
and actions, a manager their team's, an analyst aggregates and customers by pseudonym, a
channel system only posts touchpoints), and is refused the rest with a line saying why."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey.api import create_app
from journey.tokens import TokensError, load_tokens
from tests.stories import recorded_stories, tp

TEAMS = '\n[teams]\ninside_sales = ["kathrine", "peter"]\nbranch = ["li", "amira"]\n'
ROLES = {
    "root": ("admin", {}),
    "kathrine": ("rep", {"rep": "kathrine"}),
    "branch": ("manager", {"team": "branch"}),
    "ada": ("analyst", {}),
    "crm": ("ingest", {}),
}
KEY = "0f" * 32


def token_of(name: str) -> str:
    return f"token-of-{name}"


def tokens_file(folder: Path, entries: dict[str, tuple[str, dict[str, str]]] = ROLES) -> Path:
    lines = [f'pseudonym_key = "{KEY}"']
    for name, (role, scope) in entries.items():
        digest = hashlib.sha256(token_of(name).encode()).hexdigest()
        lines += ["[[tokens]]", f'name = "{name}"', f'role = "{role}"', f'sha256 = "{digest}"']
        lines += [f'{key} = "{value}"' for key, value in scope.items()]
    path = folder / "tokens.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def with_teams(folder: Path) -> Path:
    default = resources.files("engine").joinpath("default_journey.toml").read_text("utf-8")
    path = folder / "journey.toml"
    path.write_text(default + TEAMS)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("roles")
    recorded_stories(made)
    return made


@pytest.fixture(scope="module")
def api(folder: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=folder / "data", definition_path=with_teams(folder))
    app = create_app(
        settings,
        token="the-api-token",
        ingest_token="the-ingest-token",
        tokens=load_tokens(tokens_file(folder)),
    )
    with TestClient(app) as client:
        yield client


def as_(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token_of(name)}"}


def ids(response: Any, key: str = "customer_id") -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(item[key] for item in response.json()["items"])


def refused(response: Any) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    assert "\n" not in detail
    return detail


def test_a_rep_reads_their_customers_and_the_actions_they_own(api: TestClient) -> None:
    rep = as_("kathrine")

    assert api.get("/api/me", headers=rep).json() == {
        "name": "kathrine",
        "role": "rep",
        "rep": "kathrine",
        "team": None,
        "reps": ["kathrine"],
    }
    assert ids(api.get("/api/customers", headers=rep)) == ["S1-ANNA"]
    assert api.get("/api/customers/S1-ANNA", headers=rep).json()["rep"] == "kathrine"
    assert {a["owner"] for a in api.get("/api/actions", headers=rep).json()["items"]} == {
        "kathrine"
    }
    assert ids(api.get("/api/frictions", headers=rep)) == ["S1-ANNA"] * 4
    assert ids(api.get("/api/owners", headers=rep), "owner") == ["kathrine"]
    worklist = api.get("/api/worklist", params={"owner": "kathrine"}, headers=rep)
    assert worklist.status_code == 200
    (action_id, *_) = [item["action_id"] for item in worklist.json()["items"]]
    assert api.get(f"/api/actions/{action_id}", headers=rep).status_code == 200
    assert api.get("/api/identity/S1-ANNA", headers=rep).status_code == 200


def test_a_rep_is_refused_other_customers_as_if_they_were_unknown(api: TestClient) -> None:
    rep = as_("kathrine")

    others = refused(api.get("/api/customers/S3-CARLA", headers=rep))
    unknown = refused(api.get("/api/customers/NOBODY", headers=rep))

    assert others == "kathrine (rep): customer 'S3-CARLA' is not kathrine's to read"
    assert unknown == "kathrine (rep): customer 'NOBODY' is not kathrine's to read"
    assert refused(api.get("/api/identity/S3-CARLA", headers=rep)).endswith(
        "not kathrine's to read"
    )
    assert refused(api.get("/api/customers", params={"rep": "li"}, headers=rep)) == (
        "kathrine (rep): rep: 'li' is not kathrine's to read"
    )
    assert "owner: 'amira'" in refused(api.get("/api/actions?owner=amira", headers=rep))
    assert "owner: 'amira'" in refused(api.get("/api/worklist?owner=amira", headers=rep))
    amiras = api.get("/api/actions", params={"owner": "amira"}, headers=as_("root"))
    (theirs,) = amiras.json()["items"]
    assert "not kathrine's" in refused(api.get(f"/api/actions/{theirs['action_id']}", headers=rep))
    assert refused(api.get("/api/customers/S3-CARLA", headers=rep)) == others  # kept answer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/funnel"),
        ("get", "/api/frictions/counts"),
        ("get", "/api/effectiveness"),
        ("get", "/api/attribution"),
        ("get", "/api/velocity"),
        ("get", "/api/identity/conflicts"),
        ("post", "/api/identity/merge"),
        ("post", "/api/backtest"),
        ("post", "/api/touchpoints"),
    ],
)
def test_a_rep_and_a_manager_are_refused_aggregates_merges_and_ingest(
    api: TestClient, method: str, path: str
) -> None:
    for name, role in (("kathrine", "rep"), ("branch", "manager")):
        detail = refused(api.request(method, path, headers=as_(name), json={}))
        assert detail.startswith(f"{name} ({role}): {method.upper()} {path} takes ")


@pytest.mark.parametrize(
    ("method", "route"), [("get", "/api/people/{who}/export"), ("post", "/api/people/{who}/forget")]
)
def test_only_an_admin_exports_or_forgets_a_person(
    api: TestClient, method: str, route: str
) -> None:
    path = route.replace("{who}", "S1-ANNA")
    asked = {"reason": "request 1", "by": "dpo"}
    for name, role in (("kathrine", "rep"), ("branch", "manager"), ("ada", "analyst")):
        detail = refused(api.request(method, path, headers=as_(name), json=asked))
        assert detail == f"{name} ({role}): {method.upper()} {route} takes admin tokens"


def test_a_rep_reports_outcomes_only_on_their_own_actions_as_themselves(
    api: TestClient,
) -> None:
    rep = as_("kathrine")
    (mine, *_) = api.get("/api/actions", headers=rep).json()["items"]
    amiras = api.get("/api/actions", params={"owner": "amira"}, headers=as_("root"))
    (theirs,) = amiras.json()["items"]

    reported = api.post(
        f"/api/actions/{mine['action_id']}/outcome", json={"status": "accepted"}, headers=rep
    )
    assert reported.status_code == 201, reported.text
    assert reported.json()["status"] == "accepted"
    assert "not kathrine's" in refused(
        api.post(
            f"/api/actions/{theirs['action_id']}/outcome", json={"status": "done"}, headers=rep
        )
    )
    assert "rep_id: reports as 'kathrine', not 'peter'" in refused(
        api.post(
            f"/api/actions/{mine['action_id']}/outcome",
            json={"status": "accepted", "rep_id": "peter"},
            headers=rep,
        )
    )
    manager = api.post(
        f"/api/actions/{theirs['action_id']}/outcome",
        json={"status": "done"},
        headers=as_("branch"),
    )
    assert "takes admin or rep tokens" in refused(manager)


def test_a_manager_reads_what_the_reps_of_their_team_read(api: TestClient) -> None:
    manager = as_("branch")

    assert api.get("/api/me", headers=manager).json()["reps"] == ["amira", "li"]
    assert ids(api.get("/api/customers", headers=manager)) == ["S3-CARLA", "S5-EVA"]
    assert ids(api.get("/api/customers", params={"rep": "li"}, headers=manager)) == ["S3-CARLA"]
    assert api.get("/api/customers/S5-EVA", headers=manager).status_code == 200
    assert "team branch's" in refused(api.get("/api/customers/S1-ANNA", headers=manager))
    assert "rep: 'kathrine'" in refused(api.get("/api/customers?rep=kathrine", headers=manager))
    assert {a["owner"] for a in api.get("/api/actions", headers=manager).json()["items"]} == {
        "amira"
    }
    assert ids(api.get("/api/owners", headers=manager), "owner") == ["amira"]
    assert set(ids(api.get("/api/frictions", headers=manager))) == {"S3-CARLA", "S5-EVA"}
    assert api.get("/api/worklist?owner=amira", headers=manager).status_code == 200
    assert refused(api.get("/api/worklist?owner=kathrine", headers=manager))


def test_an_analyst_reads_aggregates_and_customers_only_by_pseudonym(api: TestClient) -> None:
    analyst = as_("ada")
    real = ids(api.get("/api/customers", headers=as_("root")))

    for path in ("/api/funnel", "/api/frictions/counts", "/api/effectiveness"):
        assert api.get(path, headers=analyst).status_code == 200, path
    assert api.get("/api/attribution", headers=analyst).status_code == 200
    assert api.get("/api/velocity", headers=analyst).status_code == 200
    listed = ids(api.get("/api/customers", headers=analyst))
    assert len(listed) == len(real)
    assert not set(listed) & set(real)
    assert listed == ids(api.get("/api/customers", headers=analyst))  # stable
    frictions = ids(api.get("/api/frictions", headers=analyst))
    assert set(frictions) <= set(listed)
    assert not set(frictions) & set(real)

    anna = api.get("/api/customers", params={"stage": "evaluating", "rep": "kathrine"})
    assert anna.status_code == 401  # no token at all
    (pseudonym,) = ids(api.get("/api/customers", params={"rep": "kathrine"}, headers=analyst))
    journey = api.get(f"/api/customers/{pseudonym}", headers=analyst)
    assert journey.status_code == 200, journey.text
    shown = journey.json()
    assert shown["customer_id"] == pseudonym
    assert shown["stage"] == "evaluating"
    assert [t["event_id"] for t in shown["timeline"]] == [f"s1-{i}" for i in range(1, 7)]
    assert all(t["attributes"] == {} for t in shown["timeline"])
    assert shown["next_actions"]
    assert {(a["customer_id"], a["reason"]) for a in shown["next_actions"]} == {(pseudonym, None)}
    text = json.dumps(shown)
    for named in ("S1-ANNA", "C-17", "host"):  # the id, the referrer's, the tour's attributes
        assert named not in text
    assert api.get("/api/customers/S1-ANNA", headers=analyst).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/actions"),
        ("get", "/api/worklist?owner=kathrine"),
        ("get", "/api/identity/S1-ANNA"),
        ("get", "/api/identity/conflicts"),
        ("get", "/api/customers?q=S1"),
        ("post", "/api/touchpoints"),
        ("post", "/api/backtest?customer=S1-ANNA"),
    ],
)
def test_an_analyst_is_refused_what_names_people(api: TestClient, method: str, path: str) -> None:
    assert refused(api.request(method, path, headers=as_("ada"), content=b"[journey]")).startswith(
        "ada (analyst): "
    )


def test_an_analyst_backtests_a_candidate_without_naming_customers(api: TestClient) -> None:
    candidate = resources.files("engine").joinpath("default_journey.toml").read_text("utf-8")

    tried = api.post("/api/backtest", content=candidate.encode(), headers=as_("ada"))

    assert tried.status_code == 200, tried.text
    assert tried.json()["customer"] == []


def test_an_ingest_token_only_posts_touchpoints(api: TestClient) -> None:
    channel = as_("crm")
    record = tp("roles-1", "R-1", "web", "page_view", 1_773_000_000_000)

    assert api.post("/api/touchpoints", json=record, headers=channel).status_code == 202
    for path in ("/api/funnel", "/api/customers", "/api/customers/R-1", "/api/owners"):
        assert refused(api.get(path, headers=channel)).startswith("crm (ingest): GET ")
    assert api.get("/api/me", headers=channel).json()["role"] == "ingest"


def test_an_admin_of_the_file_reads_and_posts_everything(api: TestClient) -> None:
    admin = as_("root")
    record = tp("roles-2", "R-2", "web", "page_view", 1_773_000_000_000)

    assert len(ids(api.get("/api/customers", headers=admin))) >= 6
    assert api.get("/api/funnel", headers=admin).status_code == 200
    assert api.get("/api/identity/conflicts", headers=admin).status_code == 200
    assert api.post("/api/touchpoints", json=record, headers=admin).status_code == 202
    assert api.get("/api/me", headers=admin).json()["reps"] is None


def test_the_tokens_of_the_environment_keep_working_beside_the_file(api: TestClient) -> None:
    sales = {"authorization": "Bearer the-api-token"}
    channel = {"authorization": "Bearer the-ingest-token"}
    record = tp("roles-3", "R-3", "web", "page_view", 1_773_000_000_000)

    assert api.get("/api/customers/S3-CARLA", headers=sales).status_code == 200
    assert api.get("/api/me", headers=sales).json()["role"] == "admin"
    assert api.post("/api/touchpoints", json=record, headers=channel).status_code == 202
    # As before roles: each is refused with 401 where it is not the token taken.
    assert api.post("/api/touchpoints", json=record, headers=sales).status_code == 401
    assert api.get("/api/funnel", headers=channel).status_code == 401
    assert api.get("/api/funnel", headers={"authorization": "Bearer nobody"}).status_code == 401


def test_the_documentation_needs_a_token_and_names_the_roles_of_each_endpoint(
    api: TestClient,
) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers={"authorization": "Bearer nobody"}).status_code == 401
    assert api.get("/healthz").status_code == 200
    assert api.get("/metrics").status_code == 200
    assert api.get("/docs", headers=as_("crm")).status_code == 200

    document = api.get("/openapi.json", headers=as_("kathrine")).json()
    roles = {
        (path, method): operation["x-roles"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert roles[("/api/touchpoints", "post")] == ["admin", "ingest"]
    assert roles[("/api/funnel", "get")] == ["admin", "analyst"]
    assert roles[("/api/customers/{customer_id}", "get")] == ["admin", "rep", "manager", "analyst"]
    assert roles[("/api/actions/{action_id}/outcome", "post")] == ["admin", "rep"]
    assert roles[("/api/identity/merge", "post")] == ["admin"]
    assert all(roles.values())
    funnel = document["paths"]["/api/funnel"]["get"]
    assert funnel["description"].endswith("Roles: admin, analyst.")
    assert "403" in funnel["responses"]


def test_a_manager_of_a_team_the_definition_lacks_stops_the_server(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, {"south": ("manager", {"team": "south"})})

    with pytest.raises(TokensError) as refused_file:
        create_app(Settings(data_dir=tmp_path / "data"), tokens=load_tokens(path))

    assert str(refused_file.value) == (
        f"{path}: tokens[0] ('south').team: no team 'south' in the journey definition's "
        "[teams] (none)"
    )
