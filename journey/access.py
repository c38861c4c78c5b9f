"""Who is calling `journey serve`, and what they may read: the token a request gives, found
among JOURNEY_API_TOKEN (admin), JOURNEY_INGEST_TOKEN (ingest) and the tokens file, and the
roles each endpoint takes. A rep reads for themselves, a manager for their team's reps; an
analyst reads aggregates, and customers only by pseudonym."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.definition import JourneyDefinition
from journey.tokens import TokenEntry, Tokens

# The tokens, as the OpenAPI document names them; asked for only when they are set.
SALES_TOKEN = HTTPBearer(
    scheme_name="salesToken",
    description="JOURNEY_API_TOKEN, or a token of the tokens file: reading journeys, lists "
    "and aggregates, and reporting outcomes, as the token's role allows (`x-roles`).",
    auto_error=False,
)
INGEST_TOKEN = HTTPBearer(
    scheme_name="ingestToken",
    description="JOURNEY_INGEST_TOKEN (or JOURNEY_API_TOKEN), or an ingest or admin token of "
    "the tokens file: posting touchpoints.",
    auto_error=False,
)

EVERYONE = ("admin", "rep", "manager", "analyst", "ingest")
SALES = ("admin", "rep", "manager")  # read customers and actions, within their scope
FIGURES = ("admin", "analyst")  # aggregates
UNAUTHORISED = "a valid token is required: Authorization: Bearer <token>"
# The pages of the OpenAPI document: they describe every endpoint, so they need a token of
# any role once tokens are set. Their scripts hold nothing of this engine.
DOCUMENTATION = frozenset({"/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"})


@dataclass(frozen=True)
class Principal:
    """Who a request comes from. `reps`: whose customers and actions they read (None:
    everyone's, or, for an analyst, no one's by name)."""

    name: str
    role: str
    reps: frozenset[str] | None = None
    rep: str | None = None
    team: str | None = None
    # JOURNEY_API_TOKEN and JOURNEY_INGEST_TOKEN: refused with 401 where they do not fit, as
    # before roles; a file's token is known, and refused with 403 saying why.
    environment: bool = False
    ingests: bool = True

    @property
    def scoped(self) -> bool:
        return self.reps is not None

    def may_read(self, rep: str | None) -> bool:
        """Whether a customer whose rep is `rep`, or an action `rep` owns, is theirs."""
        return self.reps is None or rep in self.reps

    def refuse(self, detail: str) -> HTTPException:
        return HTTPException(403, f"{self.name} ({self.role}): {detail}")

    def not_theirs(self, what: str) -> HTTPException:
        """A customer, an action or a rep that is not theirs to read: 403, whether it
        exists or not, so that the answer says nothing of others' customers."""
        whose = f"team {self.team}'s" if self.team is not None else f"{self.rep}'s"
        return self.refuse(f"{what} is not {whose} to read")

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "rep": self.rep,
            "team": self.team,
            "reps": sorted(self.reps) if self.reps is not None else None,
        }


OPEN = Principal("anyone", "admin")


class Access:
    """The tokens a server takes; with none set, it is open to everyone, as an admin."""

    def __init__(
        self,
        definition: JourneyDefinition,
        *,
        token: str | None = None,
        ingest_token: str | None = None,
        tokens: Tokens | None = None,
    ) -> None:
        self._token = token
        self._ingest_token = ingest_token
        self.tokens = tokens
        if tokens is not None:
            tokens.check_teams(definition)
        self._teams = definition.teams
        self.pseudonyms = Pseudonyms(self.pseudonym)
        self._reading = token is not None or bool(tokens and tokens.entries)
        self.any = self._reading or ingest_token is not None

    def who(self, given: str | None, *, ingest: bool = False) -> Principal | None:
        """Who gives this token (None: no one known); with no token set for what is asked
        (reading, or with `ingest` posting touchpoints), anyone."""
        if not (self.any if ingest else self._reading):
            return OPEN
        if given is None:
            return None
        if self._token is not None and _same(given, self._token):
            return Principal(
                "JOURNEY_API_TOKEN", "admin", environment=True, ingests=self._ingest_token is None
            )
        if self._ingest_token is not None and _same(given, self._ingest_token):
            return Principal("JOURNEY_INGEST_TOKEN", "ingest", environment=True)
        entry = self.tokens.find(given) if self.tokens is not None else None
        return None if entry is None else self._principal(entry)

    def _principal(self, entry: TokenEntry) -> Principal:
        if entry.role == "rep":
            reps = frozenset({entry.rep or ""})
        elif entry.role == "manager":
            reps = frozenset(self._teams.get(entry.team or "", ()))
        else:
            reps = None
        return Principal(entry.name, entry.role, reps, entry.rep, entry.team)

    def pseudonym(self, customer_id: str) -> str:
        assert self.tokens is not None  # an analyst's token comes from the tokens file
        return self.tokens.pseudonym(customer_id)


class Pseudonyms:
    """Customers by pseudonym, for an analyst who asks for one: learnt from every customer's
    id whenever one asked for is not known yet."""

    def __init__(self, pseudonym: Callable[[str], str]) -> None:
        self._pseudonym = pseudonym
        self._known: dict[str, str] = {}

    def find(self, pseudonym: str, every: Callable[[], Iterable[str]]) -> str | None:
        found = self._known.get(pseudonym)
        if found is None:
            # Replaced whole, never changed in place: another request may be reading it.
            self._known = {self._pseudonym(customer_id): customer_id for customer_id in every()}
            found = self._known.get(pseudonym)
        return found


def pseudonymous_journey(
    journey: dict[str, Any], pseudonym: Callable[[str], str]
) -> dict[str, Any]:
    """A journey as an analyst reads it: the customer by pseudonym, the actions without
    their reasons (they name people), and the touchpoints without their attributes (a
    referrer's id, a host's name, whatever a channel sends)."""
    return {
        **journey,
        "customer_id": pseudonym(journey["customer_id"]),
        "next_actions": [
            {
                **action,
                "customer_id": pseudonym(action["customer_id"]),
                "reason": None,
                "status_reason": None,
            }
            for action in journey["next_actions"]
        ],
        "timeline": [{**entry, "attributes": {}} for entry in journey["timeline"]],
    }


def _same(given: str, expected: str) -> bool:
    # Compared as bytes: a header may hold any character, and compare_digest refuses text
    # that is not ASCII.
    return secrets.compare_digest(given.encode(), expected.encode())


def _unauthorised() -> HTTPException:
    return HTTPException(401, UNAUTHORISED, headers={"WWW-Authenticate": "Bearer"})


def allow(*roles: str, ingest: bool = False) -> Any:
    """`who: Annotated[Principal, allow("admin", "rep")]`: the roles an endpoint takes, and
    who called it. The OpenAPI document lists the roles as the endpoint's `x-roles`."""
    scheme = INGEST_TOKEN if ingest else SALES_TOKEN

    # The scheme is given as a default, not in the annotation: annotations are read as text
    # (from __future__), where a local name cannot be found. Checks that wait for nothing are
    # coroutines: the server runs them in its loop, not in a thread of their own.
    async def check(
        request: Request,
        given: HTTPAuthorizationCredentials | None = Depends(scheme),  # noqa: B008
    ) -> Principal:
        access: Access = request.app.state.access
        found = access.who(given.credentials if given else None, ingest=ingest)
        if found is None:
            raise _unauthorised()
        if found.role in roles and (found.ingests or not ingest):
            return found
        if found.environment:
            raise _unauthorised()  # not the one this endpoint takes, as before roles
        route = getattr(request.scope.get("route"), "path", request.url.path)
        raise found.refuse(f"{request.method} {route} takes {_listed(roles)} tokens")

    check.roles = roles  # type: ignore[attr-defined]
    return Depends(check)


def roles_of(call: Any) -> tuple[str, ...] | None:
    """The roles a dependency lets through, if it is one of `allow`'s."""
    found = getattr(call, "roles", None)
    return found if isinstance(found, tuple) else None


def _listed(roles: tuple[str, ...]) -> str:
    return ", ".join(roles[:-1]) + f" or {roles[-1]}" if len(roles) > 1 else roles[0]


Who = Annotated[Principal, allow(*EVERYONE)]


class GuardedDocumentation:
    """The OpenAPI document and its pages need a token of any role once tokens are set;
    `refused` answers 401 in the shape every error has."""

    def __init__(self, app: ASGIApp, access: Access, refused: Callable[[str], ASGIApp]) -> None:
        self._app = app
        self._access = access
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in DOCUMENTATION and self._access.any:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
            if not given or self._access.who(given, ingest=True) is None:
                await self._refused(scope["path"])(scope, receive, send)
                return
        await self._app(scope, receive, send)
