"""Who may call `journey serve`: the tokens file (JOURNEY_TOKENS_FILE), each token with a name,
a role and the SHA-256 digest of the token (never the token itself), and the key analysts'
pseudonyms are made with. `journey tokens new` makes a token and the lines that grant it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError
from engine.settings import Settings

ROLES = ("admin", "rep", "manager", "analyst", "ingest")
Role = Literal["admin", "rep", "manager", "analyst", "ingest"]
_DIGEST = r"^[0-9a-f]{64}$"
PSEUDONYM_KEY_BYTES = 32


class TokensError(ConfigurationError):
    """A tokens file that cannot be used: the message names the file, the entry and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenEntry(_Model):
    """One token: `rep` names the rep a rep's token reads for, `team` the team a manager's
    token reads for (a team of the journey definition's [teams])."""

    name: str = Field(min_length=1)
    role: Role
    sha256: str = Field(pattern=_DIGEST, description="The token's SHA-256 digest, in hex.")
    rep: str | None = Field(default=None, min_length=1)
    team: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_token_itself(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "token" in data:
            raise ValueError("token: keep the token's SHA-256 digest (sha256), never the token")
        return data

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        for key, role in (("rep", "rep"), ("team", "manager")):
            given = getattr(self, key) is not None
            if self.role == role and not given:
                raise ValueError(f"{key}: a {role} token names its {key} ({key} = ...)")
            if self.role != role and given:
                raise ValueError(f"{key}: only a {role} token names a {key}")
        return self


class TokensFile(_Model):
    # Analysts see customers by a pseudonym made with this key: the same customer, the same
    # pseudonym, for as long as the key is kept.
    # (At least 32 characters; `journey tokens key` makes 64 random hex digits.)
    pseudonym_key: str | None = Field(default=None, min_length=32)
    tokens: tuple[TokenEntry, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names: set[str] = set()
        digests: set[str] = set()
        for index, entry in enumerate(self.tokens):
            if entry.name in names:
                raise ValueError(f"tokens[{index}].name: {entry.name!r} is named twice")
            if entry.sha256 in digests:
                raise ValueError(f"tokens[{index}].sha256: the same token is given twice")
            names.add(entry.name)
            digests.add(entry.sha256)
        if self.pseudonym_key is None and any(e.role == "analyst" for e in self.tokens):
            raise ValueError(
                "pseudonym_key: required with analyst tokens (journey tokens key makes one)"
            )
        return self


class Tokens:
    """The tokens of a file, found by the digest of the token a request gives."""

    def __init__(self, parsed: TokensFile, origin: str) -> None:
        self.entries = parsed.tokens
        self.origin = origin
        self._key = (parsed.pseudonym_key or "").encode()

    def find(self, token: str) -> TokenEntry | None:
        """The entry of a token given, compared by digest in constant time (and with every
        entry, so that the time says nothing of which matched)."""
        given = digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(given, entry.sha256):
                found = entry
        return found

    def pseudonym(self, customer_id: str) -> str:
        """A customer's pseudonym: the same for the same id and key, and no way back."""
        mac = hmac.new(self._key, customer_id.encode(), hashlib.sha256).hexdigest()
        return f"p-{mac[:24]}"

    def check_teams(self, definition: JourneyDefinition) -> None:
        """Every manager's team is one of the journey definition's."""
        for index, entry in enumerate(self.entries):
            if entry.team is not None and entry.team not in definition.teams:
                where = _entry(index, entry.name)
                known = ", ".join(sorted(definition.teams)) or "none"
                raise TokensError(
                    f"{self.origin}: {where}.team: no team {entry.team!r} in the journey "
                    f"definition's [teams] ({known})"
                )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: Path) -> Tokens:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise TokensError(f"{path}: cannot read the tokens file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise TokensError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_tokens(text, origin=str(path))


def parse_tokens(text: str, *, origin: str) -> Tokens:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokensError(f"{origin}: not valid TOML: {_line(str(exc))}") from None
    try:
        parsed = TokensFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first["loc"], document)
        message = _line(str(first["msg"]).removeprefix("Value error, "))
        more = exc.error_count() - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise TokensError(f"{origin}: {where + ': ' if where else ''}{message}{also}") from None
    return Tokens(parsed, origin)


def _location(loc: tuple[int | str, ...], document: Mapping[str, Any]) -> str:
    """`tokens[2] ('kathrine').role`: the entry by place and by name, then the key."""
    if len(loc) >= 2 and loc[0] == "tokens" and isinstance(loc[1], int):
        entries = document.get("tokens")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:])
        return _entry(loc[1], name) + rest
    return ".".join(str(part) for part in loc)


def _entry(index: int, name: object) -> str:
    return f"tokens[{index}] ({name!r})" if isinstance(name, str) else f"tokens[{index}]"


def _line(message: str) -> str:
    return " ".join(message.split())


def entry_lines(entry: Mapping[str, str]) -> list[str]:
    """An entry as the lines of the tokens file that grant it."""
    return ["[[tokens]]", *(f"{key} = {_toml_text(value)}" for key, value in entry.items())]


def _toml_text(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


@click.group()
def tokens() -> None:
    """Tokens for journey serve, kept in the file JOURNEY_TOKENS_FILE names."""


@tokens.command("new")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@click.option("--rep", help="With --role rep: the rep's id, as touchpoints and actions name them.")
@click.option("--team", help="With --role manager: a team of the journey definition's [teams].")
def new_token(name: str, role: str, rep: str | None, team: str | None) -> None:
    """Makes a random token for NAME and prints it once, then the lines to add to the tokens
    file: only its digest is kept there, so it cannot be printed again."""
    for option, value, fits in (("--rep", rep, "rep"), ("--team", team, "manager")):
        if (value is not None) != (role == fits):
            raise click.UsageError(f"{option} goes with --role {fits}, and only with it")
    token = secrets.token_urlsafe(32)
    entry = {"name": name, "role": role, "sha256": digest(token)}
    entry.update({key: value for key, value in (("rep", rep), ("team", team)) if value})
    lines = entry_lines(entry)
    try:
        parse_tokens("\n".join(lines), origin="--role, --rep and --team")
    except TokensError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"token: {token}")
    click.echo("# Add to the tokens file:")
    for line in lines:
        click.echo(line)


@tokens.command("key")
def new_key() -> None:
    """Prints a fresh pseudonym_key line for the tokens file (analysts' pseudonyms change
    with it)."""
    click.echo(f'pseudonym_key = "{secrets.token_hex(PSEUDONYM_KEY_BYTES)}"')


@tokens.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_context
def check(ctx: click.Context, path: Path | None) -> None:
    """Reads the tokens file (PATH, or the one JOURNEY_TOKENS_FILE names) as journey serve
    would, and lists its tokens by name and role."""
    named = os.environ.get("JOURNEY_TOKENS_FILE")
    chosen = path or (Path(named) if named else None)
    if chosen is None:
        raise click.UsageError("give the tokens file, or set JOURNEY_TOKENS_FILE")
    found = load_tokens(chosen)
    settings = ctx.find_object(Settings) or Settings()
    found.check_teams(load_definition(settings.definition_path))
    for entry in found.entries:
        scope = entry.rep or entry.team
        click.echo(f"{entry.name}: {entry.role}{f' ({scope})' if scope else ''}")
