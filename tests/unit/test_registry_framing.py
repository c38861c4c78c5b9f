"""Messages framed for a schema registry (a zero byte, the schema id, the Avro body): read
with the writer schema the registry holds, each id asked once, and every way it can go wrong
told apart: the record's fault is a dead letter, the registry's absence is an outage."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.ingest import Rejection, triage
from consumers.settings import KafkaSettings
from engine.errors import ConfigurationError, DecodeError, RegistryUnavailable
from engine.touchpoints import Touchpoint
from schemas.codec import RegistryWriters, contract, load_contract_schema, wire_contract
from schemas.files import touchpoint_avro
from schemas.registry import HttpSchemaRegistry, SchemaRegistry, UnknownSchema, shown_url
from tests.conftest import T0, touchpoint
from tests.registry import Registry, current, framed, incompatible, older, register

NOW = T0 + 60_000


class InMemoryRegistry(SchemaRegistry):
    """Schemas by id, as a registry holds them; counts what it is asked, and can be away."""

    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = {schema_id: json.dumps(schema) for schema_id, schema in schemas.items()}
        self.asked: list[int] = []
        self.away = False

    @property
    def name(self) -> str:
        return "the registry in memory"

    def schema(self, schema_id: int) -> str:
        self.asked.append(schema_id)
        if self.away:
            raise RegistryUnavailable("connection refused")
        if schema_id not in self.schemas:
            raise UnknownSchema(f"schema id {schema_id} is not in the schema registry")
        return self.schemas[schema_id]

    def close(self) -> None:
        pass


def wire_record(**overrides: Any) -> dict[str, Any]:
    record = touchpoint_avro(touchpoint("e-1", page="pricing"))
    record.update(overrides)
    return record


@pytest.fixture
def registry() -> InMemoryRegistry:
    return InMemoryRegistry({1: current(), 2: older(), 3: incompatible()})


def test_a_framed_message_is_read_with_the_writer_schema_the_registry_holds(
    registry: InMemoryRegistry,
) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    outcome = triage(framed(1, current(), wire_record()), decoder, now_ms=NOW, max_bytes=64 * 1024)

    assert outcome == touchpoint("e-1", page="pricing")
    assert registry.asked == [1]


def test_a_message_written_with_an_older_schema_reads_with_the_defaults_of_ours(
    registry: InMemoryRegistry,
) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)
    record = {k: v for k, v in wire_record().items() if k not in ("rep_id", "outcome")}
    del record["attributes"]

    decoded = decoder.decode(framed(2, older(), record))

    assert decoded["attributes"] == {}
    assert decoded["rep_id"] is None
    assert decoded["occurred_at"] == T0  # milliseconds, as the wire contract reads them


def test_the_contract_with_logical_types_reads_times_as_datetimes(
    registry: InMemoryRegistry,
) -> None:
    decoder = contract("Touchpoint").reading_registry(registry)

    decoded = decoder.decode(framed(1, current(), wire_record()))

    assert decoded["occurred_at"].timestamp() * 1000 == T0


def test_an_incompatible_writer_schema_is_a_dead_letter_naming_the_id_and_the_problem(
    registry: InMemoryRegistry,
) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    outcome = triage(
        framed(3, incompatible(), wire_record(source=7)), decoder, now_ms=NOW, max_bytes=65536
    )

    assert outcome == Rejection(
        "undecodable",
        "schema id 3 cannot be read as journey.Touchpoint: Schema mismatch: int is not string",
    )


def test_a_writer_record_of_another_name_is_named_in_one_line() -> None:
    other = copy.deepcopy(current())
    other.update(name="Visit", namespace="com.acme")
    decoder = wire_contract("Touchpoint").reading_registry(InMemoryRegistry({9: other}))

    with pytest.raises(DecodeError) as error:
        decoder.decode(framed(9, other, wire_record()))

    assert str(error.value) == (
        "schema id 9 cannot be read as journey.Touchpoint: it is the record 'com.acme.Visit'"
    )


def test_an_id_the_registry_does_not_know_is_a_dead_letter_naming_the_id(
    registry: InMemoryRegistry,
) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    outcome = triage(framed(77, current(), wire_record()), decoder, now_ms=NOW, max_bytes=65536)

    assert outcome == Rejection("undecodable", "schema id 77 is not in the schema registry")


def test_without_a_registry_a_framed_message_says_which_setting_is_missing() -> None:
    outcome = triage(
        framed(5, current(), wire_record()),
        wire_contract("Touchpoint"),
        now_ms=NOW,
        max_bytes=65536,
    )

    assert outcome == Rejection(
        "undecodable",
        "framed for a schema registry (schema id 5), but JOURNEY_SCHEMA_REGISTRY_URL is not set",
    )


def test_a_registry_that_is_away_is_no_fault_of_the_record(registry: InMemoryRegistry) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)
    registry.away = True

    with pytest.raises(RegistryUnavailable):
        triage(framed(1, current(), wire_record()), decoder, now_ms=NOW, max_bytes=65536)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x00\x00\x00\x00\x01" + b"\x02", "corrupt journey.Touchpoint message (schema id 1)"),
        (b"\x00\x00\x00", "3 bytes is too short for an Avro single-object message"),
        (b'{"event_id": "e-1"}', "not an Avro single-object message (starts with 7b22)"),
    ],
)
def test_broken_frames_are_told_apart(
    registry: InMemoryRegistry, message: bytes, reason: str
) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    with pytest.raises(DecodeError) as error:
        decoder.decode(message)

    assert str(error.value).startswith(reason)


def test_bytes_after_the_record_are_refused(registry: InMemoryRegistry) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    with pytest.raises(DecodeError, match=r"2 unexpected bytes after a journey\.Touchpoint"):
        decoder.decode(framed(1, current(), wire_record()) + b"\x00\x00")


def test_a_schema_that_is_not_avro_is_refused_naming_the_id() -> None:
    registry = InMemoryRegistry({})
    registry.schemas[4] = '{"type": "object", "properties": {}}'
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    with pytest.raises(DecodeError, match=r"^schema id 4 is not an Avro schema: "):
        decoder.decode(b"\x00\x00\x00\x00\x04\x00")


def test_each_schema_id_is_asked_of_the_registry_once(registry: InMemoryRegistry) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    for n in range(50):
        decoder.decode(framed(1, current(), wire_record(event_id=f"e-{n}")))
        decoder.decode(framed(2, older(), {"event_id": f"o-{n}", **_older_fields()}))

    assert registry.asked == [1, 2]


def test_the_cache_keeps_the_most_recently_used_ids(registry: InMemoryRegistry) -> None:
    writers = RegistryWriters(registry, wire_contract("Touchpoint"), limit=2)

    for schema_id in (1, 2, 1, 3, 1, 2):
        writers.writer(schema_id)

    # 2 was the least recently used when 3 came, so it was let go and asked again.
    assert registry.asked == [1, 2, 3, 2]


def test_an_unknown_id_is_asked_again_next_time(registry: InMemoryRegistry) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)
    message = framed(8, current(), wire_record())

    for _ in range(2):
        with pytest.raises(DecodeError):
            decoder.decode(message)
    registry.schemas[8] = json.dumps(current())

    assert decoder.decode(message)["event_id"] == "e-1"
    assert registry.asked == [8, 8, 8]


def test_single_object_messages_never_ask_the_registry(registry: InMemoryRegistry) -> None:
    decoder = wire_contract("Touchpoint").reading_registry(registry)

    outcome = triage(
        contract("Touchpoint").encode(wire_record()), decoder, now_ms=NOW, max_bytes=65536
    )

    assert isinstance(outcome, Touchpoint)
    assert registry.asked == []


def test_outcomes_read_registry_framed_messages_too() -> None:
    schema = load_contract_schema("ActionOutcome")
    decoder = wire_contract("ActionOutcome").reading_registry(InMemoryRegistry({6: schema}))
    record = {
        "event_id": "o-1",
        "action_id": "a-1",
        "customer_id": "C-1",
        "status": "done",
        "reason": None,
        "snoozed_until": None,
        "rep_id": "kathrine",
        "occurred_at": T0,
    }

    assert decoder.decode(framed(6, schema, record))["action_id"] == "a-1"


def _older_fields() -> dict[str, Any]:
    record = wire_record()
    return {
        k: v for k, v in record.items() if k not in ("event_id", "rep_id", "outcome", "attributes")
    }


def test_the_registry_url_is_a_kafka_setting() -> None:
    env = {"JOURNEY_SCHEMA_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7/"}

    assert KafkaSettings.from_env(env).schema_registry_url == (
        "http://registry:8080/apis/ccompat/v7"
    )
    assert KafkaSettings.from_env({}).schema_registry_url is None


def test_a_registry_url_that_is_not_http_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as error:
        KafkaSettings.from_env({"JOURNEY_SCHEMA_REGISTRY_URL": "ftp://me:secret@registry"})

    assert "secret" not in str(error.value)
    assert str(error.value).startswith("JOURNEY_SCHEMA_REGISTRY_URL: 'ftp://registry'")


def test_the_registry_is_named_without_credentials() -> None:
    assert shown_url("https://me:secret@registry:8081/x") == "https://registry:8081/x"
    assert (
        HttpSchemaRegistry("http://127.0.0.1:1/").name
        == "the schema registry at http://127.0.0.1:1"
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on which nothing listens (for as long as the test holds it bound)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_a_registry_that_refuses_connections_is_unavailable(closed_port: int) -> None:
    registry = HttpSchemaRegistry(f"http://127.0.0.1:{closed_port}")

    with pytest.raises(RegistryUnavailable, match="ConnectError"):
        registry.schema(1)
    registry.close()


def test_the_http_registry_answers_by_id(schema_registry: Registry) -> None:
    schema_id = register(schema_registry.url, "registry-framing-value", current())
    registry = HttpSchemaRegistry(schema_registry.url)

    assert json.loads(registry.schema(schema_id))["name"] in ("Touchpoint", "journey.Touchpoint")
    with pytest.raises(UnknownSchema, match=r"^schema id 987654 is not in the schema registry$"):
        registry.schema(987654)
    registry.close()


def test_a_url_that_leads_to_no_registry_is_an_outage_not_unknown_ids(
    schema_registry: Registry,
) -> None:
    registry = HttpSchemaRegistry(f"{schema_registry.url}/no/such/prefix")

    with pytest.raises(RegistryUnavailable, match="answered 404"):
        registry.schema(1)
    registry.close()


def test_a_registry_that_never_answers_is_unavailable_after_the_timeout() -> None:
    with socket.socket() as silent:  # connections are accepted, nothing is ever said
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        registry = HttpSchemaRegistry(
            f"http://127.0.0.1:{silent.getsockname()[1]}", read_timeout_s=0.2
        )

        with pytest.raises(RegistryUnavailable, match="ReadTimeout"):
            registry.schema(1)
        registry.close()
