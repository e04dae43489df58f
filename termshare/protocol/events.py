"""Events that the protocol objects report to their drivers (frozen, slotted, named as nouns)."""

from __future__ import annotations

from dataclasses import dataclass


# Viewer side (docs/PROTOCOL.md §7.1)
@dataclass(frozen=True, slots=True)
class Ready:
    viewer_id: int
    sharer_present: bool


@dataclass(frozen=True, slots=True)
class Welcomed:
    can_write: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    cols: int
    rows: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Output:
    data: bytes


@dataclass(frozen=True, slots=True)
class Resize:
    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class Viewers:
    count: int


@dataclass(frozen=True, slots=True)
class StreamBroken:
    reason: str  # "gap", "auth" or "epoch"


@dataclass(frozen=True, slots=True)
class SharerAway:
    pass


@dataclass(frozen=True, slots=True)
class SharerBack:
    pass


@dataclass(frozen=True, slots=True)
class Ended:
    exit_status: int


@dataclass(frozen=True, slots=True)
class Removed:
    pass


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: int


@dataclass(frozen=True, slots=True)
class Pong:
    token: int


# Both sides
@dataclass(frozen=True, slots=True)
class ProtocolFailed:
    close_code: int
    error: str


# Sharer side (§7.2)
@dataclass(frozen=True, slots=True)
class Registered:
    resumed: bool


@dataclass(frozen=True, slots=True)
class ViewerJoined:
    viewer_id: int
    can_write: bool


@dataclass(frozen=True, slots=True)
class ViewerLeft:
    viewer_id: int


@dataclass(frozen=True, slots=True)
class ViewerRejected:
    viewer_id: int
    reason: int


@dataclass(frozen=True, slots=True)
class Input:
    viewer_id: int
    data: bytes


ViewerEvent = (
    Ready | Welcomed | Snapshot | Output | Resize | Viewers | StreamBroken | SharerAway | SharerBack
    | Ended | Removed | Rejected | Pong | ProtocolFailed
)
ShareEvent = Registered | ViewerJoined | ViewerLeft | ViewerRejected | Input | ProtocolFailed
