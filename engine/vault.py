"""Per-person data keys, so that a person's personal data can be erased from an immutable log.

Each subject (a journey's key: a customer id, or an anonymous person's `anon-` key) has a data
key of its own that encrypts its personal data (AES-GCM). Data keys are kept wrapped by a master
key (AES key wrap, RFC 3394) that lives outside the database, in a file or an environment
variable; rotating the master key wraps the data keys again and re-encrypts no data. Erasing a
subject deletes its data key: what it encrypted can never be read again, by anyone, while the
rest of each event stays as it was and replays as before.

Lookups by identifier use keyed digests (HMAC-SHA256 under an index key, itself wrapped by the
master key), never the identifier itself. A digest still tells equal identifiers apart from
unequal ones: it is pseudonymous, not anonymous, data."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from engine.errors import ConfigurationError
from engine.identifiers import DIGEST_PREFIX

# A digest stands in for an identifier in stored events: the prefix and 27 characters of
# base64 (160 bits). It passes normalisation as it is.
_DIGEST_CHARS = 27
INDEX_SUBJECT = ""  # the index key's row: no journey has an empty key
_NONCE = 12
# Data keys kept unwrapped in memory, a process at a time.
_MAX_OPEN_KEYS = 200_000
_KEY_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A subject's data key as stored: wrapped by the master key named `master`."""

    subject: str
    master: str
    wrapped: bytes


class KeyStore(ABC):
    """Where the wrapped data keys are kept: beside the events, in the store's database."""

    @abstractmethod
    def wrapped_keys(self, subjects: Sequence[str]) -> dict[str, WrappedKey]:
        """The keys of those subjects that have one."""

    @abstractmethod
    def add_keys(self, keys: Sequence[WrappedKey]) -> None:
        """Keeps these keys; a subject that has a key already keeps the one it has."""

    @abstractmethod
    def replace_keys(self, keys: Sequence[WrappedKey]) -> None:
        """Keeps these keys instead of the subjects' present ones (after a rotation)."""

    @abstractmethod
    def erase_keys(self, subjects: Sequence[str]) -> int:
        """Deletes these subjects' keys so that no copy stays in the database's files; how
        many there were."""

    @abstractmethod
    def all_keys(self) -> list[WrappedKey]: ...

    @abstractmethod
    def changes(self) -> int:
        """How many times keys were erased or replaced so far: a process that holds keys
        looks them up again only when this has moved."""

    @abstractmethod
    def count_keys(self) -> int:
        """How many keys are kept, the index key's included."""

    @abstractmethod
    def has_keys(self) -> bool:
        """Whether any key is kept: a store with keys cannot be opened without a master key."""


class MasterKeys:
    """The master keys, by name. The first wraps new data keys; the others only unwrap keys
    wrapped before a rotation.

    A key file holds one key a line, `name:base64`, newest first (`journey keys new-master`
    writes one); JOURNEY_MASTER_KEY holds one such line, or just the base64."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], where: str) -> None:
        if not keys:
            raise ConfigurationError(f"{where}: holds no master key")
        self._keys = dict(keys)
        self.current = keys[0][0]
        self.where = where

    @classmethod
    def load(cls, path: Path | None, value: str | None) -> MasterKeys | None:
        """The master keys in the file at `path` (JOURNEY_MASTER_KEY_FILE), or else in `value`
        (JOURNEY_MASTER_KEY); None if neither is given."""
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigurationError(
                    f"JOURNEY_MASTER_KEY_FILE: cannot read {path}: {exc.strerror}"
                ) from None
            return cls.parse(text, f"JOURNEY_MASTER_KEY_FILE {path}")
        if value:
            return cls.parse(value if ":" in value else f"default:{value}", "JOURNEY_MASTER_KEY")
        return None

    @classmethod
    def parse(cls, text: str, where: str) -> MasterKeys:
        keys: list[tuple[str, bytes]] = []
        for number, written in enumerate(text.splitlines(), 1):
            line = written.strip()
            if not line or line.startswith("#"):
                continue
            name, colon, encoded = line.partition(":")
            name = name.strip()
            if not colon or not name or not set(name) <= _KEY_NAME:
                raise ConfigurationError(f"{where}, line {number}: expected name:base64-key")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):  # ValueError: not ASCII
                raise ConfigurationError(
                    f"{where}, line {number}: the key of {name!r} is not base64"
                ) from None
            if len(key) != 32:
                raise ConfigurationError(
                    f"{where}, line {number}: the key of {name!r} has {len(key)} bytes, not 32"
                )
            if any(name == known for known, _ in keys):
                raise ConfigurationError(f"{where}, line {number}: {name!r} is named twice")
            keys.append((name, key))
        return cls(keys, where)

    @staticmethod
    def new_line(name: str) -> str:
        """A line for a key file: a fresh random master key called `name`."""
        if not name or not set(name) <= _KEY_NAME:
            raise ConfigurationError(f"master key name {name!r}: use letters, digits, . _ -")
        return f"{name}:{base64.b64encode(os.urandom(32)).decode()}"

    def wrap(self, subject: str, key: bytes) -> WrappedKey:
        return WrappedKey(subject, self.current, aes_key_wrap(self._keys[self.current], key))

    def unwrap(self, stored: WrappedKey) -> bytes:
        master = self._keys.get(stored.master)
        if master is None:
            raise ConfigurationError(
                f"{self.where}: has no master key {stored.master!r}, which wraps the store's "
                "data keys (add it back, below the current one)"
            )
        try:
            key: bytes = aes_key_unwrap(master, stored.wrapped)
        except InvalidUnwrap:
            raise ConfigurationError(
                f"{self.where}: master key {stored.master!r} is not the one the store's "
                "data keys were wrapped with"
            ) from None
        return key


class Vault:
    """Seals and opens subjects' personal data, makes identifiers' digests, and erases."""

    def __init__(self, master: MasterKeys, keys: KeyStore) -> None:
        self.master = master
        self._keys = keys
        # The data keys unwrapped so far, raw: an AES-GCM object apiece would cost ten times
        # the memory, for one a touchpoint whose personal data is new to its person.
        self._open: dict[str, bytes] = {}
        self._wrapped: dict[str, WrappedKey] = {}  # as the store held them when unwrapped
        self._changes: int | None = None  # the store's key changes when they were looked up
        # How many times this process let go of data keys: what was sealed with the keys it
        # held before may have been sealed with a key that is gone.
        self.let_go = 0
        self._index = hmac.new(self._key(INDEX_SUBJECT), digestmod=hashlib.sha256)

    # -- identifiers -----------------------------------------------------------------------

    def digest(self, kind: str, value: str) -> str:
        """The keyed digest of an identifier in its matching form: the same in every process
        of this store, and useless without the index key."""
        mac = self._index.copy()
        mac.update(f"{kind}:{value}".encode())
        return DIGEST_PREFIX + base64.urlsafe_b64encode(mac.digest())[:_DIGEST_CHARS].decode()

    # -- sealing ---------------------------------------------------------------------------

    def prepare(self, subjects: Iterable[str]) -> None:
        """Makes sure these subjects have keys, as the store holds them now, making the
        missing ones at once (a batch's subjects, before it is sealed): a key another
        process erased is forgotten here too, and the subject gets a new one. The keys held
        already are looked up again only when another process erased or replaced some."""
        wanted = set(subjects)
        if not wanted:
            return
        changes = self._keys.changes()
        if changes == self._changes:
            self._load([s for s in wanted if s not in self._open], make=True)
            return
        stored = self._keys.wrapped_keys(list(wanted))
        for subject in wanted:
            known = self._wrapped.get(subject)
            if known is not None and stored.get(subject) != known:
                self._forget(subject)
        self._load([s for s in wanted if s not in self._open], make=True, stored=stored)
        self._changes = changes

    def seal(self, subject: str, data: Mapping[str, Any]) -> tuple[str, str]:
        """`data` encrypted with the subject's key, and a check of it: a keyed digest, equal
        for equal data of the subject, so that the same touchpoint sent again (even after
        its subject was erased) is known for a repeat."""
        key = self._open.get(subject) or self._load([subject], make=True)[subject]
        plain = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        nonce = os.urandom(_NONCE)
        aad = subject.encode()
        sealed = nonce + AESGCM(key).encrypt(nonce, plain, aad)
        mac = self._index.copy()
        mac.update(b"%s\0%s" % (aad, plain))
        return base64.b64encode(mac.digest()[:12]).decode(), base64.b64encode(sealed).decode()

    def open(self, subject: str, sealed: str) -> dict[str, Any] | None:
        """What `seal` sealed for this subject; None once the subject has been erased."""
        key = self._open.get(subject)
        if key is None:
            key = self._load([subject], make=False).get(subject)
            if key is None:
                return None
        raw = base64.b64decode(sealed)
        try:
            plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], subject.encode())
        except InvalidTag:  # sealed under a key erased since; the subject has a new one
            return None
        data: dict[str, Any] = orjson.loads(plain)
        return data

    # -- erasing and rotating --------------------------------------------------------------

    def erase(self, subjects: Sequence[str]) -> int:
        """Deletes these subjects' keys: their sealed data is unreadable from now on."""
        for subject in subjects:
            self._forget(subject)
        return self._keys.erase_keys([s for s in subjects if s != INDEX_SUBJECT])

    def data_keys(self) -> int:
        """How many subjects have a data key."""
        return max(self._keys.count_keys() - 1, 0)  # the index key is none

    def rotate(self) -> int:
        """Wraps every data key with the current master key; how many were wrapped again."""
        stale = [key for key in self._keys.all_keys() if key.master != self.master.current]
        rewrapped = [self.master.wrap(key.subject, self.master.unwrap(key)) for key in stale]
        self._keys.replace_keys(rewrapped)
        return len(rewrapped)

    def _key(self, subject: str) -> bytes:
        stored = self._keys.wrapped_keys([subject]).get(subject)
        if stored is None:
            self._keys.add_keys([self.master.wrap(subject, AESGCM.generate_key(256))])
            stored = self._keys.wrapped_keys([subject])[subject]
        return self.master.unwrap(stored)

    def _load(
        self,
        subjects: Sequence[str],
        *,
        make: bool,
        stored: Mapping[str, WrappedKey] | None = None,
    ) -> dict[str, bytes]:
        """Unwraps these subjects' keys (`stored`, if they were just read), making those
        missing with `make`."""
        if not subjects:
            return {}
        if stored is None:
            stored = self._keys.wrapped_keys(subjects)
        found = {subject: stored[subject] for subject in subjects if subject in stored}
        missing = [subject for subject in subjects if subject not in found]
        if missing and make:
            # Another process may make some at the same time: the first kept wins, and both
            # read it back.
            self._keys.add_keys(
                [self.master.wrap(subject, AESGCM.generate_key(256)) for subject in missing]
            )
            found.update(self._keys.wrapped_keys(missing))
        if len(self._open) + len(found) > _MAX_OPEN_KEYS:
            self._open.clear()
            self.let_go += 1
            self._wrapped.clear()
        opened = {subject: self.master.unwrap(key) for subject, key in found.items()}
        self._open.update(opened)
        self._wrapped.update(found)
        return opened

    def _forget(self, subject: str) -> None:
        self.let_go += 1
        self._open.pop(subject, None)
        self._wrapped.pop(subject, None)
