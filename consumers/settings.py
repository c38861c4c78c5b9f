"""Where the broker is and which topics and group the engine uses, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import ConfigurationError
from schemas.registry import check_registry_url

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOUCHPOINTS_TOPIC = "journey.touchpoints"
DEFAULT_GROUP = "journey-ingest"
DEFAULT_ACTIONS_TOPIC = "journey.next-actions"
DEFAULT_OUTCOMES_TOPIC = "journey.action-outcomes"
# A touchpoint is a few hundred bytes; anything this large is a mistake upstream.
DEFAULT_MAX_RECORD_BYTES = 64 * 1024
# Under the broker's default largest message (1 MiB and a little): a dead letter larger than
# this goes to its topic as a reference to the row PostgreSQL keeps of it.
DEFAULT_DEAD_LETTER_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = DEFAULT_BOOTSTRAP
    touchpoints_topic: str = DEFAULT_TOUCHPOINTS_TOPIC
    group: str = DEFAULT_GROUP
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    # A stable name for one member of the group (static membership): a member restarted
    # under the same name takes its partitions back at once, without a rebalance.
    instance: str | None = None
    actions_topic: str = DEFAULT_ACTIONS_TOPIC
    outcomes_topic: str = DEFAULT_OUTCOMES_TOPIC
    dead_letter_max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES
    # Where writer schemas are found for messages framed for a schema registry (a zero byte
    # and a schema id); None: such messages are dead letters that say so.
    schema_registry_url: str | None = None

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.touchpoints_topic}.dlq"

    @property
    def outcomes_dead_letter_topic(self) -> str:
        return f"{self.outcomes_topic}.dlq"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        """JOURNEY_KAFKA_BOOTSTRAP, JOURNEY_TOUCHPOINTS_TOPIC, JOURNEY_CONSUMER_GROUP,
        JOURNEY_CONSUMER_INSTANCE, JOURNEY_MAX_RECORD_BYTES, JOURNEY_ACTIONS_TOPIC,
        JOURNEY_OUTCOMES_TOPIC, JOURNEY_DEAD_LETTER_MAX_BYTES and
        JOURNEY_SCHEMA_REGISTRY_URL."""
        size = _positive(env, "JOURNEY_MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES)
        dead_letter_size = _positive(
            env, "JOURNEY_DEAD_LETTER_MAX_BYTES", DEFAULT_DEAD_LETTER_MAX_BYTES
        )
        return cls(
            bootstrap=env.get("JOURNEY_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP,
            touchpoints_topic=env.get("JOURNEY_TOUCHPOINTS_TOPIC") or DEFAULT_TOUCHPOINTS_TOPIC,
            group=env.get("JOURNEY_CONSUMER_GROUP") or DEFAULT_GROUP,
            max_record_bytes=size,
            instance=env.get("JOURNEY_CONSUMER_INSTANCE") or None,
            actions_topic=env.get("JOURNEY_ACTIONS_TOPIC") or DEFAULT_ACTIONS_TOPIC,
            outcomes_topic=env.get("JOURNEY_OUTCOMES_TOPIC") or DEFAULT_OUTCOMES_TOPIC,
            dead_letter_max_bytes=dead_letter_size,
            schema_registry_url=_registry_url(env),
        )


def _registry_url(env: Mapping[str, str]) -> str | None:
    url = (env.get("JOURNEY_SCHEMA_REGISTRY_URL") or "").strip()
    return check_registry_url("JOURNEY_SCHEMA_REGISTRY_URL", url) if url else None


def _positive(env: Mapping[str, str], key: str, default: int) -> int:
    text = env.get(key) or str(default)
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(f"{key}: {text!r} is not a positive number")
    return int(text)
