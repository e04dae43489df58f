"""Error cards, strict headers and no secret leaks, the connect page, embed mode, screenshots."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.procs import Relay

from .conftest import PtyShare, open_live, screen, screenshot, type_in_page, wait_screen, wait_state


def key_of(link: str) -> str:
    return link.split("#", 1)[1]


def secret_bytes(link: str) -> bytes:
    b64 = key_of(link).split(".", 1)[1]
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))


def damaged(link: str) -> str:
    """The same link with one character of the secret changed (the first: every bit of it counts)."""
    head, key = link.split("#", 1)
    letter, secret = key.split(".", 1)
    first = "B" if secret[0] != "B" else "C"
    return f"{head}#{letter}.{first}{secret[1:]}"


def card(page: Any) -> tuple[str, str]:
    """The visible full-page card: (title, body)."""
    loc = page.locator(".overlay .card")
    loc.wait_for(state="visible")
    return str(loc.locator("h1").text_content()), str(loc.locator("p").text_content())


def terminal_is_blank(page: Any) -> None:
    assert screen(page).strip() == "", screen(page)
    rows = page.locator(".xterm-rows")
    if rows.count():  # DOM renderer: nothing drawn either
        assert str(rows.text_content()).strip() == ""


# -- 3. error cards ----------------------------------------------------------------------------------
def test_wrong_key_shows_only_the_error_card(page: Any, share: PtyShare) -> None:
    share.type("echo secret-screen-$((40+2))\r")
    share.expect(rb"\r\nsecret-screen-42\r\n")
    page.goto(damaged(share.rw))
    wait_state(page, "rejected")
    title, body = card(page)
    assert title == "Wrong key", (title, body)
    assert "did not accept this link's key" in body
    terminal_is_blank(page)
    text = page.inner_text("body")
    assert "secret-screen" not in text
    assert page.locator(".badge").is_hidden()  # neither Read-write nor Read-only: never joined
    assert page.locator(".overlay .card button").count() == 0  # nothing to retry with a wrong key
    screenshot(page, "wrong-key.png")
    # A wrong read-only key is refused the same way.
    page.goto(damaged(share.ro))
    wait_state(page, "rejected")
    assert card(page)[0] == "Wrong key"
    terminal_is_blank(page)


def test_missing_key_shows_its_card(page: Any, share: PtyShare) -> None:
    page.goto(share.rw.split("#", 1)[0])
    wait_state(page, "invalid-link")
    title, body = card(page)
    assert title == "This link is missing its key", (title, body)
    assert "#r." in body and "#w." in body
    terminal_is_blank(page)
    page.goto(share.rw.split("#", 1)[0] + "#")  # an empty fragment is the same
    wait_state(page, "invalid-link")
    assert card(page)[0] == "This link is missing its key"


def test_unknown_session_shows_its_card(page: Any, share: PtyShare, relay: Relay) -> None:
    sid = "Zz" * 8
    assert sid not in share.rw
    page.goto(f"{relay.url}/s/{sid}#{key_of(share.rw)}")
    wait_state(page, "not-found")
    title, body = card(page)
    assert title == "Session not found", (title, body)
    assert "no session with this id" in body
    assert page.get_by_role("button", name="Retry now").is_visible()
    terminal_is_blank(page)


# -- 8. headers and secrets --------------------------------------------------------------------------
def test_strict_headers_and_no_secret_leaves_the_page(page: Any, share: PtyShare, relay: Relay) -> None:
    requests: list[Any] = []
    sockets: list[str] = []
    frames: list[bytes] = []
    page.on("request", lambda request: requests.append(request))

    def on_socket(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("framesent", lambda payload: frames.append(payload if isinstance(payload, bytes) else payload.encode()))

    page.on("websocket", on_socket)

    response = open_live(page, share.rw)
    type_in_page(page, "echo leak-check-$((2*3))")
    wait_screen(page, r"^leak-check-6$", pump=share)
    page.locator(".topbar .btn", has_text="Copy read-only link").wait_for(state="visible")

    headers = response.all_headers()
    csp = headers.get("content-security-policy", "")
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self' ws: wss:",
                      "base-uri 'none'", "form-action 'none'"):
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert headers.get("referrer-policy") == "no-referrer", headers

    origin = urlsplit(relay.url)
    key = key_of(share.rw)
    ro_key = key_of(share.ro)
    secrets = [key, key.split(".", 1)[1], ro_key.split(".", 1)[1]]
    assert requests and sockets
    for request in requests:
        where = urlsplit(request.url)
        assert (where.scheme, where.netloc) == (origin.scheme, origin.netloc), f"request to another host: {request.url}"
        assert where.fragment == "" or request.is_navigation_request(), request.url
        sent = request.url.split("#", 1)[0] + repr(request.all_headers()) + (request.post_data or "")
        for s in secrets:
            assert s not in sent, f"the secret left the page in {request.method} {request.url}"
        assert "referer" not in {h.lower() for h in request.all_headers()}, request.url
    for url in sockets:
        where = urlsplit(url)
        assert (where.scheme, where.netloc) == ("ws", origin.netloc), url
        assert where.path.endswith("/ws/view/" + share.rw.split("/s/", 1)[1].split("#", 1)[0]), url
        assert where.query == "" and where.fragment == "", url
    raw = secret_bytes(share.rw)
    for frame in frames:
        assert raw not in frame and key.encode() not in frame and secret_bytes(share.ro) not in frame
    assert len(frames) >= 2  # the handshake and the typed command


# -- 9. connect page ---------------------------------------------------------------------------------
def test_connect_page_joins_a_pasted_link(page: Any, share: PtyShare, relay: Relay) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(f"{relay.url}/")
    assert response.all_headers().get("referrer-policy") == "no-referrer"
    assert "default-src 'none'" in response.all_headers().get("content-security-policy", "")
    page.wait_for_function("window.termshare && window.termshare.state() === 'idle'")
    screenshot(page, "connect-page.png")
    page.fill("#link", share.rw)
    page.get_by_role("button", name="Join session").click()
    wait_state(page, "live")
    assert "relay=" in page.url and "key=" in page.url  # the key stays in the fragment
    wait_screen(page, r"^\$$")
    type_in_page(page, "echo via-connect-$((4*4))")
    share.expect(rb"\r\nvia-connect-16\r\n")
    wait_screen(page, r"^via-connect-16$", pump=share)
    secret = key_of(share.rw).split(".", 1)[1]
    for url in requests:
        assert url.startswith(relay.url + "/"), url
        assert secret not in url.split("#", 1)[0], url

    # A damaged link is refused on the form, without leaving the page.
    page.goto(f"{relay.url}/")
    page.fill("#link", share.rw.split("#", 1)[0])
    page.get_by_role("button", name="Join session").click()
    error = page.locator(".form-error")
    error.wait_for(state="visible")
    assert "key" in str(error.text_content())


# -- 10. embed mode ----------------------------------------------------------------------------------
def test_embed_hides_the_header(page: Any, share: PtyShare) -> None:
    base, key = share.ro.split("#", 1)
    open_live(page, f"{base}?embed=1#{key}")
    wait_screen(page, r"^\$$")
    assert page.locator("header.topbar").count() == 0
    assert page.evaluate("document.body.classList.contains('embed')")
    share.type("echo embedded-$((9*9))\r")
    wait_screen(page, r"^embedded-81$", pump=share)
    # The terminal area has the whole page: it starts at the top.
    box = page.locator("main.stage-wrap").bounding_box()
    assert box is not None and box["y"] == 0 and box["height"] == page.viewport_size["height"], box
    screenshot(page, "embed.png")


# -- 12. screenshots ---------------------------------------------------------------------------------
def test_screenshots_of_the_session_pages(new_page: Callable[[], Any], share: PtyShare) -> None:
    share.type("printf '\\033[1;32mtermshare\\033[0m demo: \\033[34m%s\\033[0m\\n' \"$(uname -s)\"; "
               "for i in 1 2 3; do echo \"line $i: the quick brown fox jumps over the lazy dog\"; done\r")
    share.expect(rb"line 3: the quick")
    rw = new_page()
    open_live(rw, share.rw)
    type_in_page(rw, "ls -la /usr | head -12")
    wait_screen(rw, r"^total ", pump=share)
    wait_screen(rw, r"^\$$", pump=share)
    ro = new_page()
    open_live(ro, share.ro)
    wait_screen(ro, r"^total ", pump=share)
    rw.wait_for_function("window.termshare.viewers() === 2")
    share.pty.pump(0.5)
    paths = [screenshot(rw, "session-read-write.png"), screenshot(ro, "session-read-only.png")]
    for path in paths:
        assert path.stat().st_size > 10_000, path
    # Visible labels match the link kind.
    assert re.fullmatch(r"read-write", str(rw.locator(".badge").text_content()), re.I)
    assert re.fullmatch(r"read-only", str(ro.locator(".badge").text_content()), re.I)


# -- 11. a copy of the web app on a plain static server ----------------------------------------------
def test_a_static_copy_without_headers_enforces_the_same_policy_and_joins(page: Any, share: PtyShare) -> None:
    """Anyone may host webapp/ themselves; the pages carry the relay's CSP in a <meta> for servers
    that send no such header."""
    import functools
    import http.server
    import threading

    from termshare.relay.web import CSP, WEB_DIR

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(WEB_DIR))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        response = page.goto(f"{origin}/index.html")
        assert "content-security-policy" not in response.all_headers()
        meta = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
        assert meta == CSP.replace("; frame-ancestors *", ""), meta  # the header's policy, minus what <meta> cannot say
        page.wait_for_function("window.termshare && window.termshare.state() === 'idle'")
        blocked = page.evaluate("""() => new Promise((resolve) => {
            document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), {once: true});
            const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = true';
            document.head.appendChild(s);
            setTimeout(() => resolve(window.__inlineRan ? 'ran' : 'no event'), 2000);
        })""")
        assert blocked.startswith("script-src"), blocked
        page.fill("#link", share.rw)
        page.get_by_role("button", name="Join session").click()
        wait_state(page, "live")
        type_in_page(page, "echo from-a-static-copy-$((5*5))")
        share.expect(rb"\r\nfrom-a-static-copy-25\r\n")
    finally:
        server.shutdown()
        server.server_close()
