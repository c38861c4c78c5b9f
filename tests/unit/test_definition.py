from __future__ import annotations

from pathlib import Path

import pytest

from engine.definition import load_definition, parse_definition
from engine.errors import DefinitionError

VALID_HEAD = '[journey]\nname = "x"\n'


def test_the_default_journey_has_the_b2b_stages_in_order_and_a_dormant_stage() -> None:
    definition = load_definition()

    assert definition.ladder == (
        "aware",
        "engaged",
        "considering",
        "evaluating",
        "deciding",
        "customer",
        "advocate",
    )
    assert definition.dormancy is not None
    assert definition.dormancy.stage == "dormant"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[journey\n", "not valid TOML"),
        (VALID_HEAD, "stages: Field required"),
        (
            VALID_HEAD + '[[stages]]\nid = "Aware"\nlabel = "A"\n',
            "stages[0].id: String should match",
        ),
        (
            VALID_HEAD + '[[stages]]\nid = "a"\nlabel = "A"\ncolour = "red"\n',
            "stages[0].colour: Extra inputs are not permitted",
        ),
        (
            VALID_HEAD
            + '[[stages]]\nid = "a"\nlabel = "A"\nenter = [{types = ["x"], min_count = 0}]\n',
            "stages[0].enter[0].min_count: Input should be greater than or equal to 1",
        ),
        (
            VALID_HEAD
            + '[[stages]]\nid = "a"\nlabel = "A"\nenter = [{types = ["x"], from = ["b"]}]\n',
            "stages[0].enter[0].from: unknown stage 'b'",
        ),
        (
            VALID_HEAD
            + '[[stages]]\nid = "a"\nlabel = "A"\nenter = [{types = ["x"], channels = ["fax"]}]\n',
            "unknown channel 'fax'",
        ),
        (
            VALID_HEAD + '[[stages]]\nid = "a"\nlabel = "A"\n[[stages]]\nid = "a"\nlabel = "B"\n',
            "stage 'a' is declared twice",
        ),
        (
            VALID_HEAD + '[dormancy]\nstage = "zz"\nafter_days = 3\nfrom = ["a"]\n'
            '[[stages]]\nid = "a"\nlabel = "A"\n',
            "dormancy.stage: unknown stage 'zz'",
        ),
    ],
)
def test_an_invalid_definition_is_refused_naming_the_key_and_the_problem(
    text: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, origin="mine.toml")

    assert str(caught.value).startswith("mine.toml: ")
    assert message in str(caught.value)


def test_a_missing_definition_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"missing\.toml: cannot read"):
        load_definition(tmp_path / "missing.toml")
