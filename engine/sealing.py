"""Touchpoints' personal data, sealed as they are recorded.

A sealed touchpoint keeps in the clear everything the journey is made of (its channel, type,
time, outcome, rep and the attributes no one marked personal) and, for its identifiers, their
keyed digests, which is all the identity graph needs to tell who is who. The identifiers as
sent, and the personal attributes, are sealed with the key of the journey it is recorded
under: erasing that key leaves the journey as it was, and its personal data unreadable.

Identifiers are digested in their matching form (engine/identifiers.py), with the region the
journey definition had when they were recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.definition import IdentityPolicy, JourneyDefinition, PrivacyPolicy
from engine.errors import InvalidTouchpoint
from engine.identifiers import (
    BUILT_IN_KINDS,
    CUSTOMER_ID,
    DIGEST_PREFIX,
    Identifier,
    anonymous_id,
    normalised,
)
from engine.touchpoints import Touchpoint
from engine.vault import Vault

# The fields a sealed touchpoint adds: a check of its personal data (so that the same
# touchpoint sent again is recognised) before its recording time, the sealed data after it.
CHECK = "personal_data"
SEALED = "sealed"
ERASED = "(erased)"  # what personal data reads as once its key is gone
_MAX_REMEMBERED = 200_000  # identifiers digested, and people's data sealed, a process remembers
# A touchpoint's personal data as sent: its email, phone and cookie id, and its personal
# attributes (name, value), if any.
Unsealed = tuple[str | None, str | None, str | None, tuple[tuple[str, str], ...] | None]


class Sealing:
    """Seals touchpoints' personal data with the vault, as the journey definition marks it."""

    def __init__(self, vault: Vault, identity: IdentityPolicy, privacy: PrivacyPolicy) -> None:
        self.vault = vault
        self.identity = identity
        self._personal = frozenset(privacy.personal)
        self._kinds = frozenset(identity.kinds)
        # Identifiers as sent, and their digests (None for those that identify no one); each
        # key's last personal data as sent, and what it was sealed to (check, sealed text),
        # for as long as the vault holds the keys it was sealed with.
        self._digests: dict[tuple[str, str], str | None] = {}
        self._made: dict[str, tuple[Unsealed, tuple[str, str]]] = {}
        self._made_with = vault.let_go

    def sealed_definition(self, definition: JourneyDefinition) -> JourneyDefinition:
        """`definition`, its shared identifiers also known by their digests, which are what
        the identity graph meets in sealed touchpoints."""
        policy = definition.identity
        digests = {
            kind: tuple(
                self.vault.digest(kind, normalised(kind, value, policy.region)) for value in values
            )
            for kind, values in policy.shared.items()
        }
        sealed = IdentityPolicy.model_validate({**policy.model_dump(), "shared_digests": digests})
        return definition.model_copy(update={"identity": sealed})

    def matching(self, identifier: Identifier) -> Identifier:
        """An identifier in matching form (a person typed it, say) as sealed touchpoints
        hold it: its digest."""
        if identifier.kind == CUSTOMER_ID or identifier.value.startswith(DIGEST_PREFIX):
            return identifier
        return Identifier(identifier.kind, self.vault.digest(identifier.kind, identifier.value))

    def prepare(self, touchpoints: Iterable[Touchpoint]) -> None:
        """Makes the keys a batch needs, at once."""
        self.vault.prepare(self.key_of(tp) for tp in touchpoints if self._has_personal(tp))

    def key_of(self, tp: Touchpoint) -> str:
        """The key a touchpoint is recorded under: an anonymous one's is made from the digest
        of its first identifier, so that no key shows an identifier either."""
        if not tp.anonymous:
            return tp.customer_id
        for kind in BUILT_IN_KINDS:
            value = getattr(tp, kind)
            if value:
                digest = self.digest(kind, value) or self.vault.digest(kind, value.strip())
                if digest:
                    return anonymous_id(Identifier(kind, digest))
        return tp.customer_id

    def digest(self, kind: str, value: str) -> str | None:
        """An identifier's digest in its matching form; None if it identifies no one."""
        found = self._digests.get((kind, value), "")  # no digest is empty
        if found == "":
            try:
                found = self.vault.digest(kind, normalised(kind, value, self.identity.region))
            except InvalidTouchpoint:
                found = None
            if len(self._digests) >= _MAX_REMEMBERED:
                self._digests.clear()
            self._digests[(kind, value)] = found
        return found

    def resealed(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """A touchpoint recorded in the clear, sealed under the key it was recorded under;
        None if it holds no personal data or is sealed already."""
        if SEALED in fields:
            return None
        identifiers = fields.get("identifiers") or {}
        attributes = fields.get("attributes") or {}
        tp = Touchpoint(
            fields["event_id"],
            fields["customer_id"],
            fields["channel"],
            fields["type"],
            fields["occurred_at"],
            fields["source"],
            fields.get("rep_id"),
            fields.get("outcome"),
            identifiers.get("email"),
            identifiers.get("phone"),
            identifiers.get("cookie_id"),
            attributes,
            bool(fields.get("anonymous")),
        )
        if not self._has_personal(tp):
            return None
        return self.state(tp, fields["timestamp"], key=fields["customer_id"])

    def decision_sealed(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """A people's decision that names identifiers in the clear, naming their digests
        instead; None if it names none."""
        changed = dict(fields)
        for side in ("a", "b"):
            kind, colon, value = str(fields.get(side) or "").partition(":")
            if colon and kind in self.identity.all_kinds and not value.startswith(DIGEST_PREFIX):
                changed[side] = (
                    f"{kind}:{self.digest(kind, value) or self.vault.digest(kind, value)}"
                )
        return changed if changed != fields else None

    def state(
        self, tp: Touchpoint, timestamp: datetime, *, key: str | None = None
    ) -> dict[str, Any]:
        """The stored state of a touchpoint, its personal data sealed; recorded under `key`
        (its own, unless told)."""
        state, unsealed = self._in_the_clear(tp, key)
        sealed = None
        if unsealed is not None:
            state[CHECK], sealed = self.sealed(state["customer_id"], unsealed)
        state["timestamp"] = timestamp
        if tp.anonymous:
            state["anonymous"] = True
        if sealed is not None:
            state[SEALED] = sealed
        return state

    def unsealed_state(
        self, tp: Touchpoint, timestamp: datetime
    ) -> tuple[dict[str, Any], Unsealed | None]:
        """The stored state of a touchpoint but for its personal data's check and sealed
        text, and that personal data as sent, for `sealed` (in the process that records it,
        say); None if it has none."""
        state, unsealed = self._in_the_clear(tp, None)
        state["timestamp"] = timestamp
        if tp.anonymous:
            state["anonymous"] = True
        return state, unsealed

    def prepare_keys(self, keys: Iterable[str]) -> None:
        """Makes the keys a batch needs, at once."""
        self.vault.prepare(keys)

    def sealed(self, key: str, unsealed: Unsealed) -> tuple[str, str]:
        """Personal data as sent, its check and its sealed text under `key`. A person's
        touchpoints mostly carry what their last one did: that is sealed once, for as long as
        the vault holds the key it was sealed with."""
        if self.vault.let_go != self._made_with:
            self._made.clear()
            self._made_with = self.vault.let_go
        last = self._made.get(key)
        if last is not None and last[0] == unsealed:
            return last[1]
        email, phone, cookie_id, personal = unsealed
        identifiers = {
            kind: value
            for kind, value in zip(BUILT_IN_KINDS, (email, phone, cookie_id), strict=True)
            if value
        }
        made = self.vault.seal(
            key, {"identifiers": identifiers, "attributes": dict(personal or ())}
        )
        if len(self._made) >= _MAX_REMEMBERED:
            self._made.clear()
        self._made[key] = (unsealed, made)
        return made

    def opened(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """A stored touchpoint's fields with its personal data as sent: identifiers and
        personal attributes, or `erased` where its key is gone."""
        fields = dict(state)
        sealed = fields.pop(SEALED, None)
        fields.pop(CHECK, None)
        if sealed is None:
            return fields
        data = self.vault.open(fields["customer_id"], sealed)
        if data is None:
            fields["identifiers"] = {kind: ERASED for kind in fields.get("identifiers", {})}
            fields["attributes"] = {
                name: ERASED if name in self._kinds else value
                for name, value in fields.get("attributes", {}).items()
            }
            fields["erased"] = True
            return fields
        fields["identifiers"] = data["identifiers"]
        fields["attributes"] = {**fields.get("attributes", {}), **data["attributes"]}
        return fields

    def _in_the_clear(
        self, tp: Touchpoint, key: str | None
    ) -> tuple[dict[str, Any], Unsealed | None]:
        """A touchpoint's fields that stay in the clear (identifiers as their digests) up to
        its recording time, and its personal data as sent, if any."""
        attributes: Mapping[str, str] = tp.attributes
        personal: dict[str, str] | None = None
        if not (self._personal.isdisjoint(attributes) and self._kinds.isdisjoint(attributes)):
            attributes, personal = self._split(attributes)
        state: dict[str, Any] = {
            "event_id": tp.event_id,
            "customer_id": key or (self.key_of(tp) if tp.anonymous else tp.customer_id),
            "channel": tp.channel,
            "type": tp.type,
            "occurred_at": tp.occurred_at,
            "source": tp.source,
            "rep_id": tp.rep_id,
            "outcome": tp.outcome,
            "attributes": attributes if type(attributes) is dict else dict(attributes),
        }
        if not (tp.email or tp.phone or tp.cookie_id or personal):
            state["identifiers"] = {}
            return state, None
        sent = (tp.email, tp.phone, tp.cookie_id)
        identifiers = state["identifiers"] = {}
        for kind, value in zip(BUILT_IN_KINDS, sent, strict=True):
            if value and (digest := self.digest(kind, value)):
                identifiers[kind] = digest
        return state, (*sent, tuple(personal.items()) if personal else None)

    def _split(self, attributes: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """The attributes kept in the clear (identifier kinds as digests), and the personal."""
        clear: dict[str, str] = {}
        personal: dict[str, str] = {}
        for name, value in attributes.items():
            if name in self._personal:
                personal[name] = value
            elif name in self._kinds:
                personal[name] = value
                digest = self.digest(name, value)
                if digest:
                    clear[name] = digest
            else:
                clear[name] = value
        return clear, personal

    def _has_personal(self, tp: Touchpoint) -> bool:
        if tp.email or tp.phone or tp.cookie_id:
            return True
        attributes = tp.attributes
        return not (self._personal.isdisjoint(attributes) and self._kinds.isdisjoint(attributes))
