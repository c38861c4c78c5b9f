"""The tokens file of `journey serve`: tokens by digest with a role, refused in one line that
names the file, the entry and the key; and `journey tokens`, which makes them."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import load_definition
from journey.cli import cli
from journey.tokens import TokensError, load_tokens, parse_tokens

ORIGIN = "tokens.toml"
KEY = "ab" * 32
FUZZ = settings(
    max_examples=int(os.environ.get("JOURNEY_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def toml(document: dict[str, Any]) -> str:
    """A document as TOML text: inline tables and arrays, no value for None."""
    return "".join(
        f"{key} = {_value(value)}\n" for key, value in document.items() if value is not None
    )


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value if item is not None) + "]"
    inner = ", ".join(f"{k} = {_value(v)}" for k, v in value.items() if v is not None)
    return "{" + inner + "}"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def good_document() -> dict[str, Any]:
    return {
        "pseudonym_key": KEY,
        "tokens": [
            {"name": "root", "role": "admin", "sha256": sha("t-admin")},
            {"name": "kathrine", "role": "rep", "rep": "kathrine", "sha256": sha("t-rep")},
            {"name": "north", "role": "manager", "team": "north", "sha256": sha("t-manager")},
            {"name": "ada", "role": "analyst", "sha256": sha("t-analyst")},
            {"name": "crm", "role": "ingest", "sha256": sha("t-ingest")},
        ],
    }


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(TokensError) as refused:
        parse_tokens(toml(document), origin=ORIGIN)
    return str(refused.value)


def test_a_token_is_found_by_its_digest_with_its_role_and_scope() -> None:
    tokens = parse_tokens(toml(good_document()), origin=ORIGIN)

    found = tokens.find("t-rep")
    assert found is not None
    assert (found.name, found.role, found.rep, found.team) == ("kathrine", "rep", "kathrine", None)
    assert tokens.find("t-manager").team == "north"  # type: ignore[union-attr]
    assert tokens.find("t-rep ") is None
    assert tokens.find("") is None
    assert tokens.find("t-r\u00e9p") is None  # any text a header holds


def test_a_pseudonym_is_stable_for_its_key_and_says_nothing_of_the_id() -> None:
    tokens = parse_tokens(toml(good_document()), origin=ORIGIN)
    other = parse_tokens(toml({**good_document(), "pseudonym_key": "cd" * 32}), origin="x")

    assert tokens.pseudonym("S1-ANNA") == tokens.pseudonym("S1-ANNA")
    assert tokens.pseudonym("S1-ANNA") != tokens.pseudonym("S2-BEN")
    assert tokens.pseudonym("S1-ANNA") != other.pseudonym("S1-ANNA")
    assert "ANNA" not in tokens.pseudonym("S1-ANNA")


def test_a_token_kept_in_the_file_itself_is_refused_naming_the_entry() -> None:
    document = good_document()
    document["tokens"][1] = {"name": "kathrine", "role": "rep", "rep": "kathrine", "token": "t"}

    assert refusal(document) == (
        f"{ORIGIN}: tokens[1] ('kathrine'): token: keep the token's SHA-256 digest (sha256), "
        "never the token"
    )


def test_analyst_tokens_need_the_pseudonym_key() -> None:
    document = good_document()
    del document["pseudonym_key"]

    assert refusal(document) == (
        f"{ORIGIN}: pseudonym_key: required with analyst tokens (journey tokens key makes one)"
    )


def test_a_managers_team_is_one_of_the_definitions(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(toml(good_document()))

    with pytest.raises(TokensError) as refused:
        load_tokens(path).check_teams(load_definition())
    assert str(refused.value) == (
        f"{path}: tokens[2] ('north').team: no team 'north' in the journey definition's "
        "[teams] (none)"
    )


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(TokensError, match=r"missing\.toml: cannot read the tokens file"):
        load_tokens(tmp_path / "missing.toml")
    (tmp_path / "latin.toml").write_bytes(b'pseudonym_key = "\xe9"')
    with pytest.raises(TokensError, match=r"latin\.toml: not UTF-8 text"):
        load_tokens(tmp_path / "latin.toml")


# Each way an entry can be wrong, and the key its error must name.
WRONG: dict[str, tuple[str, Any]] = {
    "no name": ("name", None),
    "an empty name": ("name", ""),
    "a name that is a number": ("name", 7),
    "no role": ("role", None),
    "an unknown role": ("role", "superuser"),
    "no digest": ("sha256", None),
    "a digest too short": ("sha256", "ab" * 31),
    "a digest in capitals": ("sha256", "AB" * 32),
    "a digest that is a list": ("sha256", ["ab" * 32]),
    "the token itself": ("token", "s3cret"),
    "a key of no meaning": ("expires", "2027-01-01"),
    "a rep named where none fits": ("rep", "kathrine"),
    "a team named where none fits": ("team", "north"),
}


@FUZZ
@given(
    index=st.integers(min_value=0, max_value=4),
    fault=st.sampled_from(sorted(WRONG)),
    name=st.text(min_size=1, max_size=12),
)
def test_every_wrong_entry_is_refused_in_one_line_naming_the_file_entry_and_key(
    index: int, fault: str, name: str
) -> None:
    document = good_document()
    entry = document["tokens"][index]
    key, value = WRONG[fault]
    if key in ("rep", "team") and entry.get(key) is not None:
        value = None  # a rep's token without its rep, a manager's without a team
    entry["name"] = name
    if key == "name" and value is None:
        del entry["name"]
    elif value is None:
        entry.pop(key, None)
    else:
        entry[key] = value

    message = refusal(document)

    assert "\n" not in message
    assert message.startswith(f"{ORIGIN}: tokens[{index}]")
    if key != "name":
        assert f"tokens[{index}] ({name!r})" in message
    assert key in message.removeprefix(f"{ORIGIN}: tokens[{index}]")


@FUZZ
@given(first=st.integers(min_value=0, max_value=4), second=st.integers(min_value=0, max_value=4))
def test_a_name_or_a_token_given_twice_is_refused_at_the_second(first: int, second: int) -> None:
    document = good_document()
    entries = document["tokens"]
    later = max(first, second)
    if first == second:
        entries.append(dict(entries[first], name="again"))
        later, key = len(entries) - 1, "sha256"
    else:
        entries[later]["name"] = entries[min(first, second)]["name"]
        key = "name"

    message = refusal(document)

    assert "\n" not in message
    assert message.startswith(f"{ORIGIN}: tokens[{later}].{key}: ")


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_is_read_or_refused_in_one_line_naming_the_file(text: str) -> None:
    assert_read_or_refused_in_one_line(text)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from(["pseudonym_key", "tokens", "token", "admin"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["name", "role", "sha256", "rep", "team"]), inner, max_size=5
                )
            ),
            max_leaves=12,
        ),
    )
)
def test_any_shape_of_file_is_read_or_refused_in_one_line(document: dict[str, Any]) -> None:
    assert_read_or_refused_in_one_line(toml(document))


def assert_read_or_refused_in_one_line(text: str) -> None:
    message = ""
    try:
        parse_tokens(text, origin=ORIGIN)
    except TokensError as exc:
        message = str(exc)
    assert "\n" not in message
    assert not message or message.startswith(f"{ORIGIN}: ")


def test_journey_tokens_new_prints_a_token_once_and_the_lines_that_grant_it(
    tmp_path: Path,
) -> None:
    made = CliRunner().invoke(cli, ["tokens", "new", "kathrine", "--role", "rep", "--rep", "k-1"])
    assert made.exit_code == 0, made.output
    first, *lines = made.output.splitlines()
    token = first.removeprefix("token: ")

    entry = tomllib.loads("\n".join(lines))["tokens"][0]
    assert entry == {"name": "kathrine", "role": "rep", "rep": "k-1", "sha256": sha(token)}
    assert token not in "\n".join(lines)
    path = tmp_path / "tokens.toml"
    path.write_text("\n".join(lines) + "\n")
    found = load_tokens(path).find(token)
    assert found is not None
    assert found.rep == "k-1"
    again = CliRunner().invoke(cli, ["tokens", "new", "kathrine", "--role", "rep", "--rep", "k-1"])
    assert again.output.splitlines()[0] != first


def test_journey_tokens_new_refuses_a_scope_that_does_not_fit_the_role() -> None:
    made = CliRunner().invoke(cli, ["tokens", "new", "kathrine", "--role", "rep"])

    assert made.exit_code != 0
    assert "--rep goes with --role rep, and only with it" in made.output


def test_journey_tokens_check_lists_the_tokens_of_a_file(tmp_path: Path) -> None:
    key = CliRunner().invoke(cli, ["tokens", "key"]).output
    path = tmp_path / "tokens.toml"
    document = good_document()
    document["tokens"] = [t for t in document["tokens"] if t["role"] != "manager"]
    path.write_text(key + toml({"tokens": document["tokens"]}))

    checked = CliRunner().invoke(cli, ["tokens", "check", str(path)])

    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines() == [
        "root: admin",
        "kathrine: rep (kathrine)",
        "ada: analyst",
        "crm: ingest",
    ]
