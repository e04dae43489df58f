"""Events that the protocol objects report to their drivers (frozen, slotted, named as nouns)."""

from __future__ import annotations

from .value import Value


# Viewer side (docs/PROTOCOL.md §7.1)
class Ready(Value):
    viewer_id: int
    sharer_present: bool


class Welcomed(Value):
    can_write: bool


class Snapshot(Value):
    cols: int
    rows: int
    data: bytes


class Output(Value):
    data: bytes


class Resize(Value):
    cols: int
    rows: int


class Viewers(Value):
    count: int


class StreamBroken(Value):
    reason: str  # "gap", "auth" or "epoch"


class SharerAway(Value):
    pass


class SharerBack(Value):
    pass


class Ended(Value):
    exit_status: int


class Removed(Value):
    pass


class Rejected(Value):
    reason: int


class Pong(Value):
    token: int


# Both sides
class ProtocolFailed(Value):
    close_code: int
    error: str


# Sharer side (§7.2)
class Registered(Value):
    resumed: bool


class ViewerJoined(Value):
    viewer_id: int
    can_write: bool


class ViewerLeft(Value):
    viewer_id: int


class ViewerRejected(Value):
    viewer_id: int
    reason: int


class Input(Value):
    viewer_id: int
    data: bytes


ViewerEvent = (
    Ready | Welcomed | Snapshot | Output | Resize | Viewers | StreamBroken | SharerAway | SharerBack
    | Ended | Removed | Rejected | Pong | ProtocolFailed
)
ShareEvent = Registered | ViewerJoined | ViewerLeft | ViewerRejected | Input | ProtocolFailed
