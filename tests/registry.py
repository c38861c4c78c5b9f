"""A schema registry for the tests, found or started.

JOURNEY_TEST_SCHEMA_REGISTRY_URL names a real one (Confluent's, Karapace, or Apicurio's
compatibility API under `/apis/ccompat/v7`). None can be installed on the machines this
project is built on: Apicurio's application is not complete on Maven Central, and Confluent's
registry and Karapace are on neither Maven Central nor PyPI. Without one the tests start
`RegistryServer`, which answers the two calls of the REST API that the engine and the tests
make, in the shapes the real ones answer them (an id per distinct schema, 404 with error code
40403 for an unknown id). The tests speak to either only over HTTP, so they run unchanged
against a real registry."""

from __future__ import annotations

import copy
import io
import json
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import httpx
import pytest

from schemas.codec import load_contract_schema

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def register(url: str, subject: str, schema: Any) -> int:
    """Registers an Avro schema under `subject` over the REST API; returns its id."""
    response = httpx.post(
        f"{url}/subjects/{subject}/versions",
        content=json.dumps({"schema": json.dumps(schema)}),
        headers={"Content-Type": CONTENT_TYPE},
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["id"])


def current() -> Any:
    return load_contract_schema("Touchpoint")


def older() -> Any:
    """Touchpoint as an earlier release had it: no rep, outcome or attributes yet."""
    schema = copy.deepcopy(current())
    schema["fields"] = [
        f for f in schema["fields"] if f["name"] not in ("rep_id", "outcome", "attributes")
    ]
    return schema


def incompatible() -> Any:
    """A schema of the same name whose `source` is a number: no reader of ours can take it."""
    schema = copy.deepcopy(current())
    next(f for f in schema["fields"] if f["name"] == "source")["type"] = "int"
    return schema


def framed(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    """A message as the common schema-registry serializers write it."""
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


@dataclass
class _Schemas:
    """What the server holds: schemas by id, and each subject's versions."""

    by_id: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, subject: str, text: str) -> int:
        with self.lock:
            found = next((i for i, held in self.by_id.items() if held == text), None)
            schema_id = found if found is not None else len(self.by_id) + 1
            self.by_id[schema_id] = text
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class _Handler(BaseHTTPRequestHandler):
    schemas: _Schemas  # set on the subclass made for each server

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            text = self.schemas.by_id.get(int(parts[2]))
            if text is None:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._answer(200, {"schema": text})
            return
        self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._answer(200, {"id": self.schemas.add(parts[1], body["schema"])})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """The tests' output is no place for an access log."""


class RegistryServer:
    """The registry's REST API on 127.0.0.1, in a thread of the test process; stopped and
    started again on the same port with what it held, as a registry restarts."""

    def __init__(self) -> None:
        self._handler = type("Handler", (_Handler,), {"schemas": _Schemas()})
        self._server: ThreadingHTTPServer | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stops answering: connections are refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass(frozen=True)
class Registry:
    """A registry the tests use: where it answers, and the server if they started it (then
    a test may stop it and start it again)."""

    url: str
    server: RegistryServer | None = None

    def stop(self) -> None:
        self._started().stop()

    def start(self) -> None:
        self._started().start()

    def _started(self) -> RegistryServer:
        if self.server is None:
            pytest.skip("the registry was not started by the tests, so they cannot stop it")
        return self.server


def registry() -> Iterator[Registry]:
    """JOURNEY_TEST_SCHEMA_REGISTRY_URL if given, else a `RegistryServer` (started in a few
    milliseconds)."""
    url = os.environ.get("JOURNEY_TEST_SCHEMA_REGISTRY_URL")
    if url:
        yield Registry(url.rstrip("/"))
        return
    server = RegistryServer()
    server.start()
    try:
        yield Registry(server.url, server)
    finally:
        server.stop()
