"""Per-person data keys: personal data sealed, opened, erased, and master keys rotated."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest
from eventsourcing.persistence import DatetimeAsISO
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.conflicts import content_hash, differs
from engine.definition import load_definition, parse_definition
from engine.errors import ConfigurationError, DefinitionError
from engine.identifiers import DIGEST_PREFIX
from engine.sealing import CHECK, ERASED, SEALED, Sealing
from engine.touchpoints import Touchpoint
from engine.transcoding import OrjsonTranscoder
from engine.vault import INDEX_SUBJECT, KeyStore, MasterKeys, Vault, WrappedKey

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def transcoder() -> OrjsonTranscoder:
    """The stored form, as the event store writes it."""
    made = OrjsonTranscoder()
    made.register(DatetimeAsISO())
    return made


class MemoryKeys(KeyStore):
    """The key store's port, kept in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, WrappedKey] = {}
        self.changed = 0

    def wrapped_keys(self, subjects: Sequence[str]) -> dict[str, WrappedKey]:
        return {s: self.rows[s] for s in subjects if s in self.rows}

    def add_keys(self, keys: Sequence[WrappedKey]) -> None:
        for key in keys:
            self.rows.setdefault(key.subject, key)

    def replace_keys(self, keys: Sequence[WrappedKey]) -> None:
        self.rows.update((key.subject, key) for key in keys)
        self.changed += 1

    def erase_keys(self, subjects: Sequence[str]) -> int:
        self.changed += 1
        return sum(self.rows.pop(s, None) is not None for s in subjects)

    def changes(self) -> int:
        return self.changed

    def all_keys(self) -> list[WrappedKey]:
        return list(self.rows.values())

    def count_keys(self) -> int:
        return len(self.rows)

    def has_keys(self) -> bool:
        return bool(self.rows)


def master(*names: str) -> MasterKeys:
    return MasterKeys.parse("\n".join(MasterKeys.new_line(n) for n in names), "test keys")


personal_values = st.text(min_size=1, max_size=40).filter(lambda t: t.strip())


@settings(max_examples=50, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=10), personal_values, max_size=4),
    subject=st.text(min_size=1, max_size=20),
)
def test_what_is_sealed_opens_until_its_subject_is_erased(
    data: dict[str, str], subject: str
) -> None:
    vault = Vault(master("k1"), MemoryKeys())
    check, sealed = vault.seal(subject, data)
    _other_check, other = vault.seal("someone else", {"name": "Berit"})
    assert vault.open(subject, sealed) == data
    assert vault.seal(subject, data)[0] == check  # the same data, the same check
    assert vault.erase([subject]) == 1
    assert vault.open(subject, sealed) is None
    assert vault.open("someone else", other) == {"name": "Berit"}
    assert vault.erase([subject]) == 0  # erasing again erases nothing more
    # Sent again after the erasure, the same data is still known for a repeat.
    assert vault.seal(subject, data)[0] == check


def test_a_subject_erased_and_seen_again_gets_a_new_key_that_opens_nothing_older() -> None:
    keys = MemoryKeys()
    vault = Vault(master("k1"), keys)
    _, before = vault.seal("C-1", {"email": "anna@example.com"})
    vault.erase(["C-1"])
    _, after = vault.seal("C-1", {"email": "anna@new.example"})
    assert vault.open("C-1", before) is None
    assert vault.open("C-1", after) == {"email": "anna@new.example"}
    # Another process, with the same store, reads it just the same.
    assert Vault(vault.master, keys).open("C-1", after) == {"email": "anna@new.example"}


def test_digests_are_the_same_in_every_process_of_a_store_and_show_nothing() -> None:
    keys = MemoryKeys()
    one = Vault(master("k1"), keys)
    digest = one.digest("email", "anna@example.com")
    two = Vault(one.master, keys)
    assert two.digest("email", "anna@example.com") == digest
    assert digest.startswith("h:")
    assert "anna" not in digest
    assert one.digest("email", "berit@example.com") != digest
    assert one.digest("cookie_id", "anna@example.com") != digest  # kinds are told apart
    assert Vault(master("k1"), MemoryKeys()).digest("email", "anna@example.com") != digest


def test_digests_and_checks_are_hmac_sha256_under_the_index_key() -> None:
    keys = MemoryKeys()
    vault = Vault(master("k1"), keys)
    index = vault.master.unwrap(keys.rows[INDEX_SUBJECT])
    digest = hmac.digest(index, b"email:anna@example.com", "sha256")
    assert vault.digest("email", "anna@example.com") == (
        DIGEST_PREFIX + base64.urlsafe_b64encode(digest)[:27].decode()
    )
    data = {"identifiers": {"email": "Anna@Example.com"}, "attributes": {"name": "Anna"}}
    plain = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    check = hmac.digest(index, b"C-1\0" + plain, "sha256")[:12]
    assert vault.seal("C-1", data)[0] == base64.b64encode(check).decode()


def test_rotating_wraps_every_key_with_the_new_master_key_and_the_old_one_can_go() -> None:
    keys = MemoryKeys()
    old_line, new_line = MasterKeys.new_line("2025"), MasterKeys.new_line("2026")
    vault = Vault(MasterKeys.parse(old_line, "test keys"), keys)
    _, sealed = vault.seal("C-1", {"phone": "+4520123456"})
    rotated = Vault(MasterKeys.parse(f"{new_line}\n{old_line}", "test keys"), keys)
    assert rotated.rotate() == 2  # the person's key and the index key
    assert {key.master for key in keys.all_keys()} == {"2026"}
    only_new = Vault(MasterKeys.parse(new_line, "test keys"), keys)
    assert only_new.open("C-1", sealed) == {"phone": "+4520123456"}
    assert only_new.digest("email", "a@b.dk") == vault.digest("email", "a@b.dk")


def test_a_store_whose_master_key_is_missing_says_which_one_in_one_line() -> None:
    keys = MemoryKeys()
    Vault(master("2025"), keys).seal("C-1", {"name": "Anna"})
    with pytest.raises(ConfigurationError) as refused:
        Vault(master("2026"), keys)
    assert str(refused.value) == (
        "test keys: has no master key '2025', which wraps the store's data keys "
        "(add it back, below the current one)"
    )
    same_name = MasterKeys.parse(MasterKeys.new_line("2025"), "test keys")
    with pytest.raises(ConfigurationError, match="is not the one the store's data keys"):
        Vault(same_name, keys)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_any_key_file_is_read_or_refused_in_one_line_naming_it(text: str) -> None:
    try:
        keys = MasterKeys.parse(text, "JOURNEY_MASTER_KEY_FILE keys.txt")
    except ConfigurationError as exc:
        message = str(exc)
        assert message.startswith("JOURNEY_MASTER_KEY_FILE keys.txt")
        assert "\n" not in message
    else:
        assert keys.current


# -- touchpoints --------------------------------------------------------------------------


def sealing(keys: KeyStore | None = None, keys_master: MasterKeys | None = None) -> Sealing:
    """A sealing of the default journey; with `keys` and `keys_master`, a process of the
    store they are."""
    definition = load_definition()
    vault = Vault(keys_master or master("k1"), keys if keys is not None else MemoryKeys())
    return Sealing(vault, definition.identity, definition.privacy)


def touchpoint(**fields: object) -> Touchpoint:
    base: dict[str, object] = {
        "event_id": "e1",
        "customer_id": "C-1",
        "channel": "email",
        "type": "email_clicked",
        "occurred_at": 1_700_000_000_000,
        "source": "crm",
    }
    return Touchpoint(**{**base, **fields})  # type: ignore[arg-type]


emails = st.from_regex(r"[a-z]{3,10}\.[a-z]{3,10}@[a-z]{3,8}\.(com|dk|org)", fullmatch=True)


@settings(max_examples=50, deadline=None)
@given(email=emails, name=personal_values, note=personal_values)
def test_a_sealed_touchpoint_keeps_no_personal_value_in_the_clear(
    email: str, name: str, note: str
) -> None:
    seal = sealing()
    tp = touchpoint(
        email=email, phone="+45 20 12 34 56", attributes={"name": name, "note": note, "link": "x"}
    )
    state = seal.state(tp, NOW)
    stored = transcoder().encode(state)
    clear = {k: v for k, v in state.items() if k not in (SEALED, CHECK)}
    for value in (email, "+4520123456", "20 12 34 56"):
        assert value.encode() not in stored
    assert "name" not in clear["attributes"]
    assert "note" not in clear["attributes"]
    assert clear["attributes"]["link"] == "x"
    assert set(clear["identifiers"]) == {"email", "phone"}
    opened = seal.opened(state)
    assert opened["identifiers"] == {"email": email, "phone": "+45 20 12 34 56"}
    assert opened["attributes"] == {"link": "x", "name": name, "note": note}


def test_an_erased_touchpoint_reads_as_erased_and_keeps_its_journey() -> None:
    seal = sealing()
    state = seal.state(touchpoint(email="anna@example.com", attributes={"name": "Anna"}), NOW)
    seal.vault.erase(["C-1"])
    opened = seal.opened(state)
    assert opened["identifiers"] == {"email": ERASED}
    assert opened["erased"] is True
    assert (opened["channel"], opened["type"], opened["attributes"]) == (
        "email",
        "email_clicked",
        {},
    )


def test_the_same_touchpoint_sealed_twice_is_a_repeat_and_other_personal_data_a_conflict() -> None:
    keys, keys_master = MemoryKeys(), master("k1")
    seal = sealing(keys, keys_master)
    tp = touchpoint(email="anna@example.com", attributes={"name": "Anna"})
    first = transcoder().encode(seal.state(tp, NOW))
    again = transcoder().encode(sealing(keys, keys_master).state(tp, NOW))  # another process
    assert first != again  # another nonce
    assert content_hash(first) == content_hash(again)
    renamed = seal.state(tp._replace(attributes={"name": "Berit"}), NOW)
    assert differs(renamed, seal.state(tp, NOW)) == (
        "conflicts with the touchpoint given earlier with this event_id: its personal_data differs"
    )


def test_a_persons_repeated_personal_data_is_sealed_once_until_another_process_erases_it() -> None:
    keys, keys_master = MemoryKeys(), master("k1")
    seal, other = sealing(keys, keys_master), sealing(keys, keys_master)
    tp = touchpoint(email="anna@example.com")
    sealed = seal.state(tp, NOW)["sealed"]
    assert seal.state(tp._replace(event_id="e2"), NOW)["sealed"] == sealed
    other.vault.erase(["C-1"])  # the person is forgotten, by another process
    seal.prepare([tp])  # as the next batch is
    resealed = seal.state(tp._replace(event_id="e3"), NOW)["sealed"]
    assert resealed != sealed
    assert other.vault.open("C-1", sealed) is None
    assert other.vault.open("C-1", resealed) == {
        "identifiers": {"email": "anna@example.com"},
        "attributes": {},
    }


def test_an_anonymous_touchpoint_is_recorded_under_a_key_no_identifier_can_be_read_from() -> None:
    seal = sealing()
    tp = touchpoint(customer_id="anon-plain", anonymous=True, email="Anna@Example.com")
    key = seal.key_of(tp)
    assert key.startswith("anon-")
    assert key != "anon-plain"
    assert seal.key_of(tp._replace(email="anna@example.com")) == key
    assert seal.state(tp, NOW)["customer_id"] == key


def test_a_rule_may_not_read_a_personal_attribute() -> None:
    text = (
        "[journey]\nname = 't'\n[[stages]]\nid = 'a'\nlabel = 'A'\n"
        "enter = [{ types = ['visit'], attributes = { note = 'vip' } }]\n"
        "[privacy]\npersonal = ['note']\n"
    )
    with pytest.raises(DefinitionError) as refused:
        parse_definition(text, origin="j.toml")
    assert str(refused.value) == (
        "j.toml: stages[0].enter[0].attributes: attribute 'note' is personal "
        "(privacy.personal), so no rule may read it"
    )
