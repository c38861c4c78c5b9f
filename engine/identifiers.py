"""Identifiers as channel systems report them, reduced to the one form under which the same
person's identifier always matches itself.

- An email address is matched without regard to case. RFC 5321 lets a mail system tell
  `Anna@` from `anna@`, but no system a customer uses does, and channels disagree on case.
  The domain is checked and its Unicode form kept (email-validator); dots and `+tags` are
  kept, since only some providers ignore them.
- A phone number becomes E.164 (`+4520123456`) with phonenumbers: a national number takes the
  journey's region (`[identity] region`), and a leading 00 is taken as the international
  prefix. A number that cannot be read as a possible one is unusable.
- A cookie id, and any kind a journey definition adds, is matched exactly as given.

Values that channels send when they know nothing (`null`, `anonymous`, `0`, `-1`, ...) are
unusable: linking people by them would join strangers.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import NamedTuple

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from engine.errors import InvalidTouchpoint

# How a keyed digest of an identifier begins (engine/vault.py); no email address or phone
# number begins so.
DIGEST_PREFIX = "h:"

CUSTOMER_ID = "customer_id"
ANONYMOUS_PREFIX = "anon-"
# The identifiers a touchpoint carries in fields of its own, in the order they place an
# anonymous touchpoint: the first one present names its person until a customer id does.
BUILT_IN_KINDS = ("email", "phone", "cookie_id")

# What channel systems put in an identifier's place when they have none (after lower-casing).
PLACEHOLDERS = frozenset(
    (
        *("null", "none", "nil", "undefined", "anonymous", "unknown", "n/a", "na", "nan"),
        *("-1", "[object object]", "test", "void", "abc123", "guest"),
    )
)
_ZEROS = re.compile(r"^[0\-\s.]*$")
# The common case, read without the libraries: a plain ASCII address, a number in E.164.
_PLAIN_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-']+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$")
_PLAIN_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -().\u00a0/")


class Identifier(NamedTuple):
    """An identifier in its matching form: `kind` is `customer_id`, `email`, `phone`,
    `cookie_id` or a kind the journey definition adds."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def anonymous_id(identifier: Identifier) -> str:
    """The id of a person known only by this identifier: a digest, so that the id shows no
    personal data, and the same for the same identifier in every process and replay."""
    digest = hashlib.blake2b(str(identifier).encode(), digest_size=8).hexdigest()
    return f"{ANONYMOUS_PREFIX}{digest}"


def stream_key(raw: dict[str, str | None]) -> str | None:
    """The key an anonymous touchpoint is recorded under: the id of its first usable
    identifier among `BUILT_IN_KINDS`, read without a region; None if it has none."""
    for kind in BUILT_IN_KINDS:
        value = raw.get(kind)
        if not value:
            continue
        try:
            matched = _normalised(kind, value, None)
        except InvalidTouchpoint as exc:
            if exc.problem.endswith("stands for no one"):
                continue
            matched = value.strip()  # a national number, say: the same text, the same key
        return anonymous_id(Identifier(kind, matched))
    return None


def parse_identifier(text: str, kinds: tuple[str, ...] = BUILT_IN_KINDS) -> Identifier:
    """`kind:value` as people write it on the command line (`email:anna@example.com`), for
    one of `kinds`; anything else is a customer id."""
    kind, colon, value = text.partition(":")
    if colon and (kind == CUSTOMER_ID or kind in kinds):
        return Identifier(kind, value)
    return Identifier(CUSTOMER_ID, text)


def normalised(kind: str, raw: str, region: str | None = None) -> str:
    """`raw` in its matching form; raises InvalidTouchpoint naming the kind if it cannot
    identify anyone. A digest that stands in for an identifier (engine/vault.py) is one."""
    if raw.startswith(DIGEST_PREFIX):
        return raw
    return _normalised(kind, raw, region)


@lru_cache(maxsize=200_000)
def _normalised(kind: str, raw: str, region: str | None) -> str:
    text = raw.strip()
    if text.lower() in PLACEHOLDERS or _ZEROS.match(text):
        raise InvalidTouchpoint(kind, f"{text!r} stands for no one")
    if kind == "email":
        return _email(text)
    if kind == "phone":
        return _phone(text, region)
    return text


def _email(text: str) -> str:
    if _PLAIN_EMAIL.match(text) and ".." not in text:
        return text.lower()
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidTouchpoint("email", f"{_short(text)} is not an email address: {exc}") from None
    return checked.normalized.lower()


def _phone(text: str, region: str | None) -> str:
    compact = text.translate(_PHONE_PUNCTUATION)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _PLAIN_PHONE.match(compact):
        return compact
    if region is None and not compact.startswith("+"):
        raise InvalidTouchpoint(
            "phone", f"{_short(text)} has no country code, and no [identity] region is set"
        )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = str(exc).split(") ", 1)[-1].rstrip(".").lower()
        raise InvalidTouchpoint("phone", f"{_short(text)} is not a phone number: {why}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidTouchpoint("phone", f"{_short(text)} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:40]}...")


def is_region(code: str) -> bool:
    """Whether phonenumbers knows the region, an ISO 3166 code such as `DK`."""
    return code in phonenumbers.SUPPORTED_REGIONS
