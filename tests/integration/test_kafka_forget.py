"""A person forgotten on a store fed by Kafka: nothing of theirs is left in PostgreSQL, not
even in the dead letter a bad record of theirs became, nor in any action published after."""

from __future__ import annotations

import json

from engine.touchpoints import touchpoint_from_record
from engine.vault import MasterKeys
from journey.console import now_ms
from schemas.codec import contract
from schemas.files import touchpoint_avro
from tests import services
from tests.integration.conftest import Pipeline, encoded, wait_until
from tests.stories import warm_referral_gone_cold

EMAIL, PHONE, NAME = "anna.lindqvist@example.com", "+45 20 99 88 77", "Anna Lindqvist"
ANNAS = (EMAIL, PHONE, "+4520998877", NAME)


def test_a_person_forgotten_leaves_nothing_in_the_store_nor_in_what_is_published_after(
    pipeline: Pipeline,
) -> None:
    pipeline.more_env["JOURNEY_MASTER_KEY"] = MasterKeys.new_line("2026")
    records = warm_referral_gone_cold()
    first, second, *rest = records
    records = [
        {**first, "email": EMAIL, "attributes": {**first["attributes"], "name": NAME}},
        {**second, "phone": PHONE},
        *rest,
    ]
    now = now_ms()
    good = [touchpoint_from_record(record, now_ms=now) for record in records]
    # Her address on a touchpoint from the far future: a dead letter that names her.
    bad = touchpoint_avro(touchpoint_from_record({**records[2], "event_id": "s1-x"}, now_ms=now))
    bad.update(email=EMAIL, occurred_at=4_102_444_800_000)
    values = [(tp.customer_id.encode(), encoded(tp)) for tp in good]
    total = pipeline.publish([*values, (b"S1-ANNA", contract("Touchpoint").encode(bad))])
    pipeline.start_member("a")
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert pipeline.journey("tick", "--at", "2026-03-14T09:00:00Z").returncode == 0
    pipeline.start("decide", "decide", "--follow")
    wait_until(lambda: pipeline.log_end(pipeline.actions_topic) >= 2, "Anna's actions published")
    # Sealed as recorded: only the dead letter still holds her address as it came.
    before = services.dumped(pipeline.database_url, pipeline.schema)
    assert before.count(EMAIL.encode()) == 1
    assert NAME.encode() not in before

    forgot = pipeline.journey("forget", f"email:{EMAIL.upper()}", "--reason", "request 9")
    assert forgot.returncode == 0, forgot.stderr
    assert "1 dead letter emptied" in " ".join(forgot.stdout.split())

    dump = services.dumped(pipeline.database_url, pipeline.schema)
    assert b"request 9" in dump  # the receipt, and the scan reads the events
    assert [value for value in ANNAS if value.encode() in dump] == []
    status = json.loads(pipeline.journey("status", "--json").stdout)
    assert status["personal_data"] == {
        "sealed": True,
        "master_key": "2026",
        "data_keys": 0,  # hers were the only ones
        "people_forgotten": 1,
    }
    letters = json.loads(pipeline.journey("dead-letters", "--json").stdout)
    assert [(letter["reason"], letter["detail"]) for letter in letters] == [("invalid", "(erased)")]
    redriven = pipeline.journey("dead-letters", "redrive")
    assert redriven.returncode == 1
    assert "still fails: erased: its person was forgotten" in redriven.stderr + redriven.stdout

    # Her journey goes on: the next touchpoint ends an action, published again, without her.
    published = pipeline.log_end(pipeline.actions_topic)
    call = {**records[1], "event_id": "s1-call", "occurred_at": records[-1]["occurred_at"] + 1}
    pipeline.publish_touchpoints([touchpoint_from_record(call, now_ms=now)])
    wait_until(
        lambda: pipeline.log_end(pipeline.actions_topic) > published, "an action published after"
    )
    after = pipeline.read_topic(pipeline.actions_topic, pipeline.log_end(pipeline.actions_topic))
    assert all(value.encode() not in record.value for record in after for value in ANNAS)
