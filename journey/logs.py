"""How processes that run until stopped log: timestamped text lines, or one JSON object per line
for a log collector (JOURNEY_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

# What every LogRecord carries; anything else on a record was passed as `extra` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO-8601), level, logger, message, the command
    and process that logged it, the `extra` fields given, and the exception if any."""

    def __init__(self, command: str, process: str) -> None:
        super().__init__()
        self._command = command
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "command": self._command,
            "process": self._process,
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str, command: str, process: str) -> None:
    """Sends every log record to stderr in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(command, process))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # The Kafka client's own reconnection chatter says nothing the command does not say.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
