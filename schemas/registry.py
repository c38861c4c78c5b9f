"""Writer schemas found by id in a schema registry, for messages framed as the common
(Confluent-style) serializers frame them: a zero byte, the schema's id in the registry (four
bytes, big-endian), then the Avro body.

The port says what a reader needs of a registry; the adapter asks one over its REST API
(`GET {url}/schemas/ids/{id}`), which Confluent's registry, Karapace and Apicurio's
compatibility API (`.../apis/ccompat/v7`) all answer. A registry that does not answer is an
outage (RegistryUnavailable), never a reason to give up on a record; an id it does not know
is the record's fault (UnknownSchema)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from urllib.parse import urlsplit, urlunsplit

import httpx

from engine.errors import ConfigurationError, DecodeError, RegistryUnavailable
from engine.outage import one_line

REGISTRY_MARKER = b"\x00"
FRAME_SIZE = 5  # the marker and the schema id
# Confluent's error code for "no schema with this id"; Apicurio's compatibility API uses it too.
SCHEMA_NOT_FOUND = 40403
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0


class UnknownSchema(DecodeError):
    """A message names a schema id the registry does not hold, or one that is not Avro."""


class SchemaRegistry(ABC):
    """Where writer schemas are found by their registry id."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The registry as logs and readiness name it (its address, without credentials)."""

    @abstractmethod
    def schema(self, schema_id: int) -> str:
        """The Avro schema registered under `schema_id`, as JSON text. Raises UnknownSchema
        if the registry holds no Avro schema under that id, RegistryUnavailable if it does
        not answer."""

    @abstractmethod
    def close(self) -> None:
        """Lets go of connections."""


class HttpSchemaRegistry(SchemaRegistry):
    """A registry asked over HTTP, on connections it keeps open."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self._url = url.rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            headers={"Accept": "application/vnd.schemaregistry.v1+json, application/json"},
        )

    @property
    def name(self) -> str:
        return f"the schema registry at {shown_url(self._url)}"

    def schema(self, schema_id: int) -> str:
        try:
            response = self._client.get(f"{self._url}/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:  # refused, timed out, cut off
            raise RegistryUnavailable(f"cannot reach {self.name}: {one_line(exc)}") from exc
        body = _json(response)
        if response.status_code == 404 and body.get("error_code") == SCHEMA_NOT_FOUND:
            raise UnknownSchema(f"schema id {schema_id} is not in the schema registry")
        if response.status_code != 200:
            # A 404 without the registry's own error code is a URL that leads to no registry
            # (Apicurio's API is under /apis/ccompat/v7); 401, 403 and 5xx are no fault of the
            # record either: none of them makes a dead letter.
            said = body.get("message") or response.reason_phrase
            raise RegistryUnavailable(
                f"cannot reach {self.name}: GET /schemas/ids/{schema_id} answered "
                f"{response.status_code} {said}"
            )
        kind = body.get("schemaType") or "AVRO"
        if kind != "AVRO":
            raise UnknownSchema(f"schema id {schema_id} is a {kind} schema, not Avro")
        text = body.get("schema")
        if not isinstance(text, str):
            raise RegistryUnavailable(
                f"cannot reach {self.name}: GET /schemas/ids/{schema_id} answered without a schema"
            )
        return text

    def close(self) -> None:
        self._client.close()


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def check_registry_url(key: str, url: str) -> str:
    """A registry's URL as given, refused unless it is http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{key}: {shown_url(url)!r} is not an http(s) URL")
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """A URL without the user name and password it may carry."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
