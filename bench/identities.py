"""The benchmark data as identity data: some touchpoints say whose they are only by an
identifier (a cookie, an email address, a phone number), some carry two.

Made from the usual dataset, record by record and seeded, so that the same file always gives
the same identity file: a share of the touchpoints lose their customer id and keep the
identifiers the demo gave them (the cookie on the web, the address on email, the number on
the phone); one left with none (a visit) gets the customer's cookie. Another share gets a
second identifier beside its own: the email address beside a cookie, the cookie beside
anything else.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

WITHOUT_CUSTOMER_ID = 0.30
TWO_IDENTIFIERS = 0.05
IDENTIFIERS = ("email", "phone", "cookie_id")
LABEL = (
    f"identities ({WITHOUT_CUSTOMER_ID:.0%} without customer id, "
    f"{TWO_IDENTIFIERS:.0%} with two identifiers)"
)
# LABEL in an argparse help text, which reads "%" as a format.
HELP_LABEL = LABEL.replace("%", "%%")


def cookie(customer_id: str) -> str:
    return f"ck-{customer_id.lower()}"  # what journey.demo gives a customer's web touchpoints


def email(customer_id: str) -> str:
    return f"{customer_id.lower()}@example.com"  # and their email touchpoints


def with_identities(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """`record`, perhaps without its customer id, perhaps with a second identifier; two draws
    of `rng` whatever the outcome, so that one record's fate does not shift the next's."""
    anonymous = rng.random() < WITHOUT_CUSTOMER_ID
    two = rng.random() < TWO_IDENTIFIERS
    customer_id = record["customer_id"]
    changed = dict(record)
    if two:
        if "cookie_id" in changed:
            changed["email"] = email(customer_id)
        else:
            changed["cookie_id"] = cookie(customer_id)
    if anonymous:
        del changed["customer_id"]
        if not any(changed.get(kind) for kind in IDENTIFIERS):
            changed["cookie_id"] = cookie(customer_id)
    return changed


def identity_dataset(plain: Path, seed: int = 1) -> Path:
    """The identity version of the JSON-lines file `plain`, written beside it once."""
    path = plain.with_name(f"{plain.stem}-identities{plain.suffix}")
    if not path.exists():
        print(f"writing {path.name}: {LABEL} ...", flush=True)
        rng = random.Random(seed)
        partial = path.with_suffix(".partial")
        # Written aside and renamed once whole: a run stopped halfway leaves no short dataset.
        with plain.open("rb") as source, partial.open("wb") as out:
            for line in source:
                out.write(orjson.dumps(with_identities(orjson.loads(line), rng)))
                out.write(b"\n")
        partial.rename(path)
    return path


def census(path: Path) -> tuple[int, int, int]:
    """(touchpoints, those without a customer id, those with two or more identifiers)."""
    count = anonymous = two = 0
    with path.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            count += 1
            anonymous += "customer_id" not in record
            two += sum(1 for kind in IDENTIFIERS if record.get(kind)) >= 2
    return count, anonymous, two
