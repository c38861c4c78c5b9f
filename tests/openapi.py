"""Reading answers against the API's own OpenAPI document: every field an answer holds is
documented, with its type, and every time is ISO 8601 text to the millisecond."""

from __future__ import annotations

import re
from typing import Any

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PROBLEM_JSON = "application/problem+json"


def resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def answer_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    content = document["paths"][path][method]["responses"][str(status)]["content"]
    return content["application/json"]["schema"]


def mismatches(
    value: Any, schema: dict[str, Any], document: dict[str, Any], at: str = ""
) -> list[str]:
    """Where `value` differs from `schema`: a field the schema does not name, a required one
    missing, a value of another type, a time that is not ISO 8601 to the millisecond."""
    schema = resolved(schema, document)
    if "anyOf" in schema:
        tried = [mismatches(value, option, document, at) for option in schema["anyOf"]]
        return [] if any(not found for found in tried) else min(tried, key=len)
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    checks = {
        "null": value is None,
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }
    if kind not in checks:
        return [f"{at}: the document gives no type"]
    if not checks[kind]:
        return [f"{at}: {value!r} is not {kind}"]
    if schema.get("format") == "date-time" and not TIME.match(value):
        return [f"{at}: {value!r} is not an ISO 8601 time to the millisecond"]
    found: list[str] = []
    if kind == "array":
        for index, item in enumerate(value):
            found += mismatches(item, schema["items"], document, f"{at}[{index}]")
    if kind == "object":
        named = schema.get("properties", {})
        others = schema.get("additionalProperties")
        found += [f"{at}.{key}: missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in named:
                found += mismatches(item, named[key], document, f"{at}.{key}")
            elif isinstance(others, dict):
                found += mismatches(item, others, document, f"{at}.{key}")
            else:
                found.append(f"{at}.{key}: not in the document")
    return found


def untyped(schema: dict[str, Any], document: dict[str, Any], at: str = "") -> list[str]:
    """Where a schema leaves a field free: no type, an object of anything, or a field
    without a description."""
    schema = resolved(schema, document)
    if "anyOf" in schema:
        return [gap for option in schema["anyOf"] for gap in untyped(option, document, at)]
    kind = schema.get("type")
    if kind is None and "enum" not in schema:
        return [f"{at}: no type"]
    if kind == "array":
        return untyped(schema["items"], document, f"{at}[]")
    if kind != "object":
        return []
    named = schema.get("properties", {})
    others = schema.get("additionalProperties")
    if not named and not isinstance(others, dict):
        return [f"{at}: an object of anything"]
    gaps = [
        f"{at}.{key}: no description"
        for key, field in named.items()
        if not field.get("description")
    ]
    for key, field in named.items():
        gaps += untyped(field, document, f"{at}.{key}")
    if isinstance(others, dict):
        gaps += untyped(others, document, f"{at}.*")
    return gaps
