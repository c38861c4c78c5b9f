"""Settings, read once from the environment into a frozen object. Tests pass a mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.errors import ConfigurationError

DEFAULT_DATA_DIR = ".journey"
# Each transaction rewrites the store's index pages that its touchpoints land on, nearly all of
# them once the batch is large: fewer, larger transactions write far less. Twice as many per
# transaction records a file about 4% faster, and costs a file's ingest about 90 MB more.
DEFAULT_BATCH_SIZE = 50_000
DEFAULT_PAGE_SIZE = 50_000
# The decider works in smaller pages: each is a transaction and a round of publishing, and a
# live action waits for its page.
DEFAULT_DECIDER_PAGE_SIZE = 2_000
# Files larger than this in all are read in a second process while the first records.
DEFAULT_PARALLEL_ABOVE_BYTES = 16 * 1024 * 1024
DEFAULT_METRICS_HOST = "127.0.0.1"
LOG_FORMATS = ("text", "json")
# eventsourcing's own names for its PostgreSQL store; JOURNEY_DATABASE_URL fills them in.
POSTGRES_KEYS = (
    "POSTGRES_DBNAME",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_SCHEMA",
    "POSTGRES_LOCK_TIMEOUT",
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    definition_path: Path | None = None
    postgres: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    page_size: int = DEFAULT_PAGE_SIZE
    decider_page_size: int = DEFAULT_DECIDER_PAGE_SIZE
    parallel_above_bytes: int = DEFAULT_PARALLEL_ABOVE_BYTES
    # Where a process that runs until stopped serves /metrics, /healthz and /readyz; None: not
    # at all. 0 takes a free port (the process logs which).
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    log_format: str = "text"  # or "json": one object per line
    # The master keys that wrap the data keys sealing personal data (engine/vault.py): a file
    # of them, or one in the environment itself. Without either, nothing is sealed.
    master_key_file: Path | None = None
    master_key: str | None = field(default=None, repr=False)

    @property
    def store(self) -> str:
        return "postgres" if self.postgres else "sqlite"

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.db"

    @property
    def views_path(self) -> Path:
        """The journey views' first generation; `journey rebuild` builds later ones beside it."""
        return self.data_dir / "views.db"

    @property
    def projections_path(self) -> Path:
        """The views of analysts' own projections."""
        return self.data_dir / "projections.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """JOURNEY_DATA_DIR, JOURNEY_DEFINITION, JOURNEY_BATCH_SIZE, JOURNEY_PAGE_SIZE,
        JOURNEY_DECIDER_PAGE_SIZE, JOURNEY_PARALLEL_ABOVE_BYTES, JOURNEY_METRICS_PORT,
        JOURNEY_METRICS_HOST, JOURNEY_LOG_FORMAT, JOURNEY_MASTER_KEY_FILE or
        JOURNEY_MASTER_KEY, and the store: PostgreSQL when
        JOURNEY_DATABASE_URL or POSTGRES_DBNAME is set, else SQLite."""
        definition = env.get("JOURNEY_DEFINITION")
        log_format = (env.get("JOURNEY_LOG_FORMAT") or "text").strip().lower()
        if log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"JOURNEY_LOG_FORMAT: {log_format!r} is neither {' nor '.join(LOG_FORMATS)}"
            )
        return cls(
            data_dir=Path(env.get("JOURNEY_DATA_DIR") or DEFAULT_DATA_DIR),
            definition_path=Path(definition) if definition else None,
            postgres=_postgres_settings(env),
            batch_size=_positive_int(env, "JOURNEY_BATCH_SIZE", DEFAULT_BATCH_SIZE),
            page_size=_positive_int(env, "JOURNEY_PAGE_SIZE", DEFAULT_PAGE_SIZE),
            decider_page_size=_positive_int(
                env, "JOURNEY_DECIDER_PAGE_SIZE", DEFAULT_DECIDER_PAGE_SIZE
            ),
            parallel_above_bytes=_whole(
                env, "JOURNEY_PARALLEL_ABOVE_BYTES", DEFAULT_PARALLEL_ABOVE_BYTES
            ),
            metrics_port=_port(env, "JOURNEY_METRICS_PORT"),
            metrics_host=env.get("JOURNEY_METRICS_HOST") or DEFAULT_METRICS_HOST,
            log_format=log_format,
            master_key_file=Path(key_file)
            if (key_file := env.get("JOURNEY_MASTER_KEY_FILE"))
            else None,
            master_key=env.get("JOURNEY_MASTER_KEY") or None,
        )


def _port(env: Mapping[str, str], key: str) -> int | None:
    if not env.get(key):
        return None
    port = _whole(env, key, 0)
    if port > 65535:
        raise ConfigurationError(f"{key}: {port} is not a port (0 to 65535)")
    return port


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    value = _whole(env, key, default)
    if value < 1:
        raise ConfigurationError(f"{key}: must be at least 1, not {value}")
    return value


def _whole(env: Mapping[str, str], key: str, default: int) -> int:
    text = env.get(key)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{key}: {text!r} is not a whole number") from None
    if value < 0:
        raise ConfigurationError(f"{key}: must not be negative, not {value}")
    return value


def _postgres_settings(env: Mapping[str, str]) -> dict[str, str]:
    url = env.get("JOURNEY_DATABASE_URL")
    if url:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError("JOURNEY_DATABASE_URL: the port is not a number") from None
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ConfigurationError(
                f"JOURNEY_DATABASE_URL: expected postgresql://user:password@host:port/dbname, "
                f"got {parts.scheme or 'no scheme'}://..."
            )
        settings = {
            "POSTGRES_DBNAME": parts.path.strip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(port or 5432),
            "POSTGRES_USER": unquote(parts.username or ""),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
        }
        for key in ("POSTGRES_SCHEMA", "POSTGRES_LOCK_TIMEOUT"):
            if env.get(key):
                settings[key] = env[key]
        return {key: value for key, value in settings.items() if value}
    if env.get("POSTGRES_DBNAME"):
        return {key: env[key] for key in POSTGRES_KEYS if env.get(key)}
    return {}
