"""A person's rights in the HTTP API: everything held about them, and being forgotten.
Included by `journey.api.create_app`; only an admin's token opens them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from journey import render
from journey.access import allow
from journey.api import _engine
from journey.contract import Erasure, ForgetIn, SubjectExport
from journey.privacy import forget, subject_export

people = APIRouter(prefix="/api/people", tags=["privacy"])


@people.get("/{who}/export", response_model=SubjectExport, dependencies=[allow("admin")])
def exported(who: str, request: Request) -> dict[str, Any]:
    """Everything the engine holds about the person `who` names (a customer id, or any
    identifier: `email:anna@example.com`), their personal data opened."""
    with _engine(request) as engine:
        return subject_export(engine, who)


@people.post("/{who}/forget", response_model=Erasure, dependencies=[allow("admin")])
def forgotten(who: str, asked: ForgetIn, request: Request) -> dict[str, Any]:
    """Forgets the person `who` names everywhere: their data keys are destroyed, the dead
    letters that name them emptied, and a receipt kept. Their journey stays, without personal
    data. Asking again erases only what came since."""
    with _engine(request) as engine:
        done = forget(engine, who, by=asked.by, reason=asked.reason)
    return {**done._asdict(), "keys": list(done.keys), "at": render.iso(done.at)}
