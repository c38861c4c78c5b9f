"""A person's rights in the HTTP API: everything held about them, and being forgotten.
Included by `journey.api.create_app`, behind the sales token like every other read and act."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from journey import render
from journey.api import _engine
from journey.contract import Erasure, ForgetIn, SubjectExport
from journey.privacy import forget, subject_export

people = APIRouter(prefix="/api/people", tags=["privacy"])


@people.get("/{who}/export", response_model=SubjectExport)
def exported(who: str, request: Request) -> dict[str, Any]:
    """Everything the engine holds about the person `who` names (a customer id, or any
    identifier: `email:anna@example.com`), their personal data opened."""
    with _engine(request) as engine:
        return subject_export(engine, who)


@people.post("/{who}/forget", response_model=Erasure)
def forgotten(who: str, asked: ForgetIn, request: Request) -> dict[str, Any]:
    """Forgets the person `who` names everywhere: their data keys are destroyed, the dead
    letters that name them emptied, and a receipt kept. Their journey stays, without personal
    data. Asking again erases only what came since."""
    with _engine(request) as engine:
        done = forget(engine, who, by=asked.by, reason=asked.reason)
    return {**done._asdict(), "keys": list(done.keys), "at": render.iso(done.at)}
