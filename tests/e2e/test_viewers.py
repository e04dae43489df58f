"""`termshare viewers` and `termshare remove`: the sharer lists its viewers and removes one, which
is told so and cannot read on, while the others keep watching."""

from __future__ import annotations

import json

from .conftest import Procs, Relay, start_json_share, termshare, timeout
from .test_errors import assert_clean_failure


def test_the_sharer_lists_and_removes_a_viewer(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_json_share(procs, shared_relay.url)
    sid = links["session"]
    stays = procs.pipe(termshare("join", links["read_only"]), name="join-stays")
    share.wait_event("viewer_joined", timeout())
    goes = procs.pipe(termshare("join", links["read_write"]), name="join-goes")
    share.wait_stdout(rb'"viewers": 2', timeout())

    listing = procs.pipe(termshare("viewers", "--session", sid, "--json"), name="viewers")
    assert listing.wait(timeout(10)) == 0, listing.stderr()
    viewers = json.loads(listing.stdout())["viewers"]
    assert [v["can_write"] for v in viewers] == [False, True]
    gone_id = viewers[1]["id"]

    # From inside the shared shell, as the sharer would type it: the session is found by itself.
    share.write(f"termshare remove {gone_id}\n")
    share.wait_stdout(rf'"viewer_left", "viewer_id": {gone_id}'.encode(), timeout())
    assert goes.wait(timeout(10)) == 1
    assert "removed you" in goes.stderr()
    seen_by_removed = goes.stdout()

    share.write("echo after-$((6*7))\n")
    stays.wait_stdout(rb"after-42", timeout())
    assert b"after-42" not in seen_by_removed + goes.stdout()

    listing = procs.pipe(termshare("viewers", "--session", sid), name="viewers-after")
    assert listing.wait(timeout(10)) == 0
    lines = listing.stdout().decode().splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[:2] == [str(viewers[0]["id"]), "read-only"]

    assert_clean_failure(procs.pipe(termshare("remove", str(gone_id), "--session", sid), name="remove-again"),
                         [f"no viewer {gone_id}"])
    share.write("exit\n")
    assert share.wait(timeout()) == 0


def test_viewers_and_remove_fail_clearly_without_a_share(procs: Procs) -> None:
    assert_clean_failure(procs.pipe(termshare("viewers"), name="viewers-none"), ["no share is running"])
    assert_clean_failure(procs.pipe(termshare("remove", "1", "--session", "not-an-id"), name="remove-bad"),
                         ["not a session id"])
    zero = procs.pipe(termshare("remove", "0"), name="remove-zero")
    assert zero.wait(timeout(10)) == 2
    assert "at least 1" in zero.stderr() and "Traceback" not in zero.stderr()
