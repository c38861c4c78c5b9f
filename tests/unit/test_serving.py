from __future__ import annotations

from journey.serving import Answers, Stamp


def test_an_answer_is_given_again_only_while_the_views_and_decisions_stand_where_it_was_read() -> (
    None
):
    answers = Answers()
    answers.put("/api/customers/A", Stamp(10, 7), b"a at 10")

    assert answers.get("/api/customers/A", Stamp(10, 7)) == b"a at 10"
    assert answers.get("/api/customers/A", Stamp(11, 7)) is None  # the views moved on
    assert answers.get("/api/customers/A", Stamp(10, 8)) is None  # or the decisions did
    assert answers.get("/api/customers/B", Stamp(10, 7)) is None


def test_an_answer_read_before_the_views_moved_on_is_not_kept_over_newer_ones() -> None:
    answers = Answers()
    answers.put("/api/customers/A", Stamp(12, 7), b"a at 12")
    answers.put("/api/customers/A", Stamp(10, 7), b"a at 10")  # a slower read, finished later

    assert answers.get("/api/customers/A", Stamp(12, 7)) == b"a at 12"
    assert answers.get("/api/customers/A", Stamp(10, 7)) is None


def test_answers_are_kept_up_to_a_bound() -> None:
    answers = Answers(most=2)
    for name in "ABC":
        answers.put(f"/api/customers/{name}", Stamp(1, 1), name.encode())

    kept = [answers.get(f"/api/customers/{name}", Stamp(1, 1)) for name in "ABC"]
    assert kept.count(None) >= 1
    assert kept[-1] == b"C"


def test_a_stamp_includes_a_write_once_both_views_and_decisions_passed_it_when_asked() -> None:
    stamp = Stamp(views=20, decided=15)

    assert stamp.includes(20, decided=False)
    assert not stamp.includes(21, decided=False)
    assert not stamp.includes(18, decided=True)
    assert stamp.includes(15, decided=True)
    assert stamp.tag == 'W/"20-15"'
