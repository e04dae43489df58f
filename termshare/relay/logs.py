"""The relay's log: one line per event on stderr, JSON (one object a line) or text.

Only metadata is ever logged: event names, session ids (the relay sees them anyway), viewer ids,
close codes and reasons, counts, sizes and durations. Never a frame body, a key, a token, a request
path or header, or a link (the secret after '#' never reaches the relay; a malformed session id,
which could be anything pasted into a URL, is not logged either).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

LOGGER: Final = logging.getLogger("termshare.relay")


def log(event: str, **fields: Any) -> None:
    LOGGER.info(event, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out["event"] = record.getMessage()
            out.update(fields)
        else:
            out["message"] = record.getMessage()
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", None)
        text = record.getMessage()
        if isinstance(fields, dict):
            text += "".join(f" {k}={json.dumps(v) if isinstance(v, str) and (' ' in v or not v) else v}"
                            for k, v in fields.items() if v is not None)
        elif record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{stamp} {record.levelname.lower()} {text}"


def setup(fmt: str | None) -> str:
    """Send the relay's and uvicorn's logs to stderr; `fmt` None picks text on a tty, else json."""
    if fmt is None:
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    LOGGER.setLevel(logging.INFO)
    return fmt
