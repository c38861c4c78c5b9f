from __future__ import annotations

from journey.serving import Answers, Stamp


def answers_from(head: int) -> Answers:
    answers = Answers()
    answers.start_at(head)
    return answers


def test_an_answer_is_given_again_until_something_of_that_customer_is_recorded() -> None:
    answers = answers_from(100)
    answers.put("A", Stamp(120, 110), b"a")
    answers.put("B", Stamp(120, 110), b"b")

    answers.seen([(121, "A")])

    assert answers.get("A") is None
    assert answers.get("B") == (Stamp(120, 110), b"b")


def test_an_answer_read_before_a_change_was_decided_on_is_not_given_again() -> None:
    answers = answers_from(100)
    answers.seen([(115, "A")])  # folded into the views (120), not yet decided on (110)
    answers.put("A", Stamp(120, 110), b"a without its new action")

    assert answers.get("A") is None


def test_a_clock_event_changes_every_answer_read_before_it() -> None:
    answers = answers_from(100)
    answers.put("A", Stamp(120, 120), b"a")

    answers.seen([(130, None)])
    answers.put("B", Stamp(130, 130), b"b")

    assert answers.get("A") is None
    assert answers.get("B") == (Stamp(130, 130), b"b")


def test_nothing_is_given_again_before_the_follower_first_looked_at_the_log() -> None:
    answers = Answers()
    answers.put("A", Stamp(120, 120), b"a")

    assert answers.get("A") is None


def test_forgetting_who_changed_when_takes_every_answer_read_before_for_changed() -> None:
    answers = Answers(most_changed=2)
    answers.start_at(100)
    answers.put("A", Stamp(105, 105), b"a")

    answers.seen([(106, "B"), (107, "C"), (108, "D")])

    assert answers.get("A") is None
    answers.put("A", Stamp(108, 108), b"a again")
    assert answers.get("A") == (Stamp(108, 108), b"a again")


def test_a_stamp_includes_a_write_once_both_views_and_decisions_passed_it_when_asked() -> None:
    stamp = Stamp(views=20, decided=15)

    assert stamp.includes(20, decided=False)
    assert not stamp.includes(21, decided=False)
    assert not stamp.includes(18, decided=True)
    assert stamp.includes(15, decided=True)
    assert stamp.tag == 'W/"20-15"'
