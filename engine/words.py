"""Touchpoints in words, for the people who read reasons and timelines: what a touchpoint type
is called, where it happened, and which page, file or form it was about. Nothing here depends
on a locale or a clock, so the same touchpoint always reads the same."""

from __future__ import annotations

from collections.abc import Mapping

# The attributes that say where a touchpoint happened, the first one present wins.
# Typed as any length, so that the compiled fold (scripts/compile.py) keeps reading them
# here rather than the length they had when it was compiled.
PLACE_ATTRIBUTES: tuple[str, ...] = ("location", "branch", "office")
# The attributes that say what a touchpoint was about (the page viewed, the file downloaded,
# the form filled in, the email's subject), the first one present wins.
DETAIL_ATTRIBUTES: tuple[str, ...] = (
    "page",
    "title",
    "url",
    "asset",
    "file",
    "form",
    "subject",
    "link",
    "topic",
    "product",
    "campaign",
)
# Both, in this order: what the fold keeps of each touchpoint to put it in words later.
WORD_ATTRIBUTES: tuple[str, ...] = (*PLACE_ATTRIBUTES, *DETAIL_ATTRIBUTES)
DETAIL_LENGTH = 60  # what is shown of a place or a detail
KEPT_LENGTH = 100  # what the journey position keeps of one

# What a sales person calls each touchpoint type of the default journey; any other type reads
# as its name with spaces.
_KINDS = {
    "call_inbound": "call to us",
    "call_outbound": "call from us",
    "call_missed": "missed call",
    "contract_signed": "signed contract",
    "content_download": "download",
    "demo_requested": "demo request",
    "email_bounced": "bounced email",
    "email_clicked": "email click",
    "email_inbound": "email to us",
    "email_opened": "opened email",
    "email_outbound": "email from us",
    "form_failed": "failed form",
    "form_submitted": "form",
    "page_view": "page view",
    "proposal_sent": "proposal",
    "referral_given": "referral they gave",
    "webinar_attended": "webinar",
}


def kind_words(kind: str) -> str:
    """A touchpoint type as people say it: "missed call" for call_missed."""
    return _KINDS.get(kind) or kind.replace("_", " ").strip() or "touchpoint"


def place(attributes: Mapping[str, str | None]) -> str | None:
    """Where the touchpoint happened, if its attributes say."""
    return shown(_first(attributes, PLACE_ATTRIBUTES))


def detail(attributes: Mapping[str, str | None]) -> str | None:
    """What the touchpoint was about (a page, a file, a form), if its attributes say."""
    return shown(_first(attributes, DETAIL_ATTRIBUTES))


def where(channel: str, place: str) -> str:
    """A place as a touchpoint names it: "at B" in person, "about B" on another channel (a
    call that booked a tour at B)."""
    return f"at {place}" if channel == "visit" else f"about {place}"


def shown(value: str | None) -> str | None:
    """An attribute's value as it is shown: on one line, at most DETAIL_LENGTH characters."""
    if value is None:
        return None
    value = " ".join(value.split())
    if len(value) > DETAIL_LENGTH:
        value = value[: DETAIL_LENGTH - 1].rstrip() + "…"
    return value or None


def _first(attributes: Mapping[str, str | None], names: tuple[str, ...]) -> str | None:
    return next((value for name in names if (value := attributes.get(name))), None)
