"""Drop a viewer terminal's answers to terminal queries from what it would type.

The sharer's application asks questions (cursor position, device attributes, colours); the
sharer's own terminal answers them. Every viewer's terminal answers too, and those answers must
not reach the shell as typed garbage.
"""

from __future__ import annotations

import re
from typing import Final

_REPLY: Final = re.compile(
    rb"\x1b\[\d+;\d+R"  # cursor position report (DSR 6)
    rb"|\x1b\[[?>=][\d;]*c"  # primary / secondary / tertiary device attributes
    rb"|\x1b\[\??[\d;]*\$y"  # DECRQM mode report
    rb"|\x1b\[[0-3]n"  # device status report
    rb"|\x1b\[\d+;\d+;\d+t"  # window size reports (XTWINOPS)
    rb"|\x1b\][0-9]+;(?:rgb|rgba):[0-9a-fA-F/]*(?:\x07|\x1b\\)"  # OSC 4/10/11/... colour replies
    rb"|\x1bP[!>|]?[0-9$+]*[r|][^\x1b]*\x1b\\"  # DCS replies: DECRQSS, XTVERSION, XTGETTCAP
    rb"|\x1b\[[IO]"  # focus in/out reports
)


def filter_replies(data: bytes) -> bytes:
    return _REPLY.sub(b"", data)
