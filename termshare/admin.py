"""`termshare sessions`: a relay's metadata-only admin view (GET /admin/sessions), as a table."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from .net import relay_base, ssl_context
from .protocol.errors import TermshareError


def fetch_sessions(relay: str, token: str, cafile: str | None, timeout: float = 10) -> dict[str, Any]:
    base = relay_base(relay, None, None)
    request = urllib.request.Request(f"{base}/admin/sessions", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context(base, cafile)) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise TermshareError(f"{base} has no admin view (start the relay with --admin-token)") from None
        if exc.code == 401:
            raise TermshareError(f"{base} refused the admin token") from None
        raise TermshareError(f"{base} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TermshareError(f"cannot reach the relay at {base}: {reason}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
        raise TermshareError(f"{base} did not answer like a termshare relay")
    return data


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def table(data: dict[str, Any]) -> str:
    rows = [("SESSION", "AGE", "IDLE", "VIEWERS", "SHARER", "FRAMES", "BYTES", "UP FRAMES", "UP BYTES")]
    for s in data["sessions"]:
        rows.append((str(s["id"]), _age(s["age_seconds"]), _age(s["idle_seconds"]), str(s["viewers"]), str(s["sharer"]),
                     str(s["frames_from_sharer"]), _size(s["bytes_from_sharer"]), str(s["frames_from_viewers"]),
                     _size(s["bytes_from_viewers"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 1 or i == 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    count = len(data["sessions"])
    lines.append(f"{count} session{'s' if count != 1 else ''} on node {data.get('node', '?')}")
    return "\n".join(lines) + "\n"


def list_sessions(relay: str, token: str, cafile: str | None, as_json: bool) -> int:
    data = fetch_sessions(relay, token, cafile)
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if as_json else table(data))
    return 0
