"""The `termshare` command line: serve, share, join, sessions."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import traceback
from collections.abc import Sequence

from . import __version__
from .protocol.errors import TermshareError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more seconds")
    return value


def _version() -> str:
    from .relay.web import WEB_DIR

    manifest = WEB_DIR / "manifest.json"
    web = "web app: not built"
    if manifest.is_file():
        import hashlib

        web = f"web app manifest sha256 {hashlib.sha256(manifest.read_bytes()).hexdigest()}"
    return f"termshare {__version__} (protocol 1; {web})"


class _VersionAction(argparse.Action):
    """`--version`, worked out only when asked: finding the web app means importing the relay
    package (Starlette), which `share` and `join` never need."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, default: str = argparse.SUPPRESS,
                 help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="termshare", description="End-to-end encrypted terminal sharing.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run a blind relay", description="Run a relay: it routes ciphertext and never sees a key.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--certfile", help="TLS certificate (PEM); serve https/wss")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.add_argument("--max-sessions", type=_positive, default=10_000, help="sessions at once (default 10000)")
    serve.add_argument("--max-viewers", type=_positive, default=500, help="viewers per session (default 500)")
    serve.add_argument("--max-per-ip", type=_positive, default=200, help="open connections per client address (default 200)")
    serve.add_argument("--trust-proxy", action="store_true", help="take client addresses from X-Forwarded-For (behind nginx)")
    serve.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                       help="only browsers on this origin may connect (repeatable; default: any, since the relay holds no secrets)")
    serve.add_argument("--share-token", action="append", default=[], metavar="TOKEN",
                       help="sharers must present this token (repeatable; also env TERMSHARE_SHARE_TOKENS, comma-separated)")
    serve.add_argument("--share-token-file", metavar="FILE",
                       help="sharer tokens, one per line ('#' starts a comment); re-read at start only")
    serve.add_argument("--admin-token", metavar="TOKEN", default=os.environ.get("TERMSHARE_ADMIN_TOKEN") or None,
                       help="enable GET /admin/sessions with this bearer token (also env TERMSHARE_ADMIN_TOKEN)")
    serve.add_argument("--idle-timeout", type=_seconds, default=0.0, metavar="SECONDS",
                       help="end sessions with no traffic either way for this long (default 0: never)")
    serve.add_argument("--redis", metavar="URL", default=os.environ.get("TERMSHARE_REDIS") or None,
                       help="scale out: share sessions with other relay nodes through Redis (redis://host:6379/0)")
    serve.add_argument("--node-name", help="the node label of metrics and the admin view (default: the host name)")
    serve.add_argument("--log-format", choices=("json", "text"),
                       help="log lines on stderr (default: text on a terminal, else JSON, one object a line)")

    share = sub.add_parser("share", help="share this terminal", description="Share a new shell (or --cmd) through a relay.")
    share.add_argument("--cmd", help="command to share instead of $SHELL (a shell-style string)")
    share.add_argument("--read-only", action="store_true", help="print only a read-only link; input is refused cryptographically")
    share.add_argument("--relay", help="relay URL, e.g. https://relay.example/termshare/ (default: an embedded relay on 127.0.0.1)")
    share.add_argument("--host", help="relay host (with --port, instead of --relay; plain http)")
    share.add_argument("--port", type=_port, help="relay port")
    share.add_argument("--cafile", help="trust this CA certificate (PEM) for the relay's TLS")
    share.add_argument("--open-browser", action="store_true", help="open the read-only link in a browser")
    share.add_argument("--qr", action="store_true", help="print the link as a QR code")
    share.add_argument("--json", action="store_true", help="print one JSON object per event on stdout (no terminal mirror)")
    share.add_argument("--share-token", metavar="TOKEN", default=os.environ.get("TERMSHARE_SHARE_TOKEN") or None,
                       help="the relay's sharer token, if it requires one (also env TERMSHARE_SHARE_TOKEN)")

    join = sub.add_parser("join", help="watch a shared terminal here", description="Join a session from this terminal. Ctrl-] leaves.")
    join.add_argument("url", help="a termshare link (quote it: it contains '#')")
    join.add_argument("--read-only", action="store_true", help="never type, even with a read-write link")
    join.add_argument("--record", metavar="FILE", help="write an asciicast v2 recording (asciinema play FILE)")
    join.add_argument("--cafile", help="trust this CA certificate (PEM) for the relay's TLS")

    sessions = sub.add_parser("sessions", help="list a relay's sessions (metadata only)",
                              description="List the sessions on a relay started with --admin-token: ids, age, "
                                          "viewers, frames and bytes. Never content.")
    sessions.add_argument("--relay", required=True, help="relay URL, e.g. https://relay.example/termshare/")
    sessions.add_argument("--admin-token", metavar="TOKEN", default=os.environ.get("TERMSHARE_ADMIN_TOKEN") or None,
                          help="the relay's admin token (also env TERMSHARE_ADMIN_TOKEN)")
    sessions.add_argument("--cafile", help="trust this CA certificate (PEM) for the relay's TLS")
    sessions.add_argument("--json", action="store_true", help="print the relay's JSON answer")
    viewers = sub.add_parser("viewers", help="list the viewers of a running share",
                             description="List the viewers of a share running on this machine, as its sharer.")
    viewers.add_argument("--session", metavar="ID", help="the share's session id (default: $TERMSHARE_SESSION, or the only share)")
    viewers.add_argument("--json", action="store_true", help="print the share's JSON answer")
    remove = sub.add_parser("remove", help="remove a viewer from a running share",
                            description="Remove a viewer: it is told so, and the output key rotates so it cannot read on.")
    remove.add_argument("viewer", type=_positive, help="the viewer's id (see termshare viewers)")
    remove.add_argument("--session", metavar="ID", help="the share's session id (default: $TERMSHARE_SESSION, or the only share)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("serve", "share", "join"):
        from .malloc import tune

        tune()
    try:
        commands = {"serve": _serve, "share": _share, "join": _join, "sessions": _sessions, "viewers": _viewers,
                    "remove": _remove}
        return commands[args.command](args)
    except (TermshareError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"termshare: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    if bool(args.certfile) != bool(args.keyfile):
        raise TermshareError("--certfile and --keyfile go together")
    for path in (args.certfile, args.keyfile):
        if path and not os.path.isfile(path):
            raise TermshareError(f"no such file: {path}")
    from .protocol.router import Limits
    from .relay import logs
    from .relay.app import RelayConfig
    from .relay.server import RelayServer, bind, uvicorn_config

    tokens = _share_tokens(args)
    limits = Limits(max_sessions=args.max_sessions, max_viewers=args.max_viewers, max_per_ip=args.max_per_ip,
                    idle_timeout=args.idle_timeout)
    origins = frozenset(o.rstrip("/") for o in args.allowed_origin)
    relay_config = RelayConfig(limits=limits, trust_proxy=args.trust_proxy, allowed_origins=origins,
                               share_tokens=tokens, admin_token=args.admin_token, redis_url=args.redis)
    if args.node_name:
        relay_config.node = args.node_name
    log_format = logs.setup(args.log_format)
    config = uvicorn_config(relay_config, args.certfile, args.keyfile, own_logging=True)
    sock = bind(args.host, args.port)
    scheme = "https" if args.certfile else "http"
    url = f"{scheme}://{args.host}:{sock.getsockname()[1]}"
    if log_format == "json":
        logs.log("listening", url=url, node=relay_config.node, share_tokens=len(tokens),
                 admin=args.admin_token is not None, idle_timeout=args.idle_timeout,
                 message=f"termshare relay on {url} (Ctrl-C stops)")
    else:
        print(f"termshare relay on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        RelayServer(config).run(sockets=[sock])
    except (ValueError, OSError) as exc:  # e.g. an unreadable certificate
        raise TermshareError(f"cannot start the relay: {exc}") from None
    return 0


def _share_tokens(args: argparse.Namespace) -> tuple[str, ...]:
    """--share-token (repeatable), --share-token-file and TERMSHARE_SHARE_TOKENS, together."""
    tokens = [t.strip() for t in args.share_token]
    tokens += [t.strip() for t in os.environ.get("TERMSHARE_SHARE_TOKENS", "").split(",")]
    if args.share_token_file:
        try:
            with open(args.share_token_file, encoding="utf-8") as f:
                from_file = [line.split("#", 1)[0].strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            raise TermshareError(f"cannot read --share-token-file: {exc}") from None
        if not any(from_file):
            raise TermshareError(f"{args.share_token_file} holds no token (one per line, '#' starts a comment)")
        tokens += from_file
    tokens = [t for t in tokens if t]
    for token in tokens:
        if not token.isascii() or not token.isprintable() or " " in token:
            raise TermshareError("a sharer token must be printable ASCII without spaces")
    return tuple(dict.fromkeys(tokens))


def _sessions(args: argparse.Namespace) -> int:
    from .admin import list_sessions

    if not args.admin_token:
        raise TermshareError("give --admin-token (or set TERMSHARE_ADMIN_TOKEN)")
    return list_sessions(args.relay, args.admin_token, args.cafile, args.json)


def _viewers(args: argparse.Namespace) -> int:
    import json
    import time

    from .share.control import find_socket, request

    path = find_socket(args.session)
    answer = request(path, {"cmd": "viewers"})
    if "error" in answer:
        raise TermshareError(str(answer["error"]))
    listed = answer.get("viewers")
    if not isinstance(listed, list):
        raise TermshareError("the share gave no list of viewers")
    if args.json:
        print(json.dumps(answer))
        return 0
    if not listed:
        print(f"session {path.stem}: no viewers")
    for viewer in listed:
        since = time.strftime("%H:%M:%S", time.localtime(float(viewer.get("joined", 0))))
        mode = "read-write" if viewer.get("can_write") else "read-only"
        print(f"{viewer.get('id')}\t{mode}\tjoined {since}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from .share.control import find_socket, request

    path = find_socket(args.session)
    answer = request(path, {"cmd": "remove", "viewer": args.viewer})
    if "error" in answer:
        raise TermshareError(str(answer["error"]))
    print(f"removed viewer {args.viewer} from session {path.stem}; the output key has rotated")
    return 0


def _share(args: argparse.Namespace) -> int:
    from .net import relay_base, ssl_context
    from .share.session import ShareOptions, ShareSession

    if args.relay and (args.host or args.port):
        raise TermshareError("give either --relay or --host/--port, not both")
    try:
        argv = shlex.split(args.cmd) if args.cmd is not None else [os.environ.get("SHELL") or "/bin/sh"]
    except ValueError as exc:
        raise TermshareError(f"cannot parse --cmd: {exc}") from None
    if not argv:
        raise TermshareError("--cmd is empty")
    embedded = args.relay is None and args.host is None and args.port is None

    async def run() -> int:
        relay = None
        if embedded:
            from .relay.server import EmbeddedRelay

            relay = EmbeddedRelay("127.0.0.1", 0)
            await relay.start()
            base = f"http://127.0.0.1:{relay.port}"
        else:
            base = relay_base(args.relay, args.host, args.port)
        opts = ShareOptions(argv=argv, base=base, read_only=args.read_only,
                            ssl_context=ssl_context(base, args.cafile), json=args.json, qr=args.qr,
                            open_browser=args.open_browser, embedded=embedded,
                            share_token=None if embedded else args.share_token)
        try:
            return await ShareSession(opts).run()
        finally:
            if relay is not None:
                await relay.stop()

    return asyncio.run(run())


def _join(args: argparse.Namespace) -> int:
    from .net import ssl_context
    from .protocol.link import parse_link
    from .viewer.session import JoinOptions, JoinSession, as_read_only

    link = parse_link(args.url)
    if args.read_only:
        link = as_read_only(link)
    try:
        opts = JoinOptions(link=link, ssl_context=ssl_context(link.base, args.cafile), record=args.record)
    except OSError as exc:
        raise TermshareError(f"cannot write the recording: {exc}") from None
    status, message = asyncio.run(JoinSession(opts).run())
    if message:
        print(f"termshare: {message}", file=sys.stderr)
    return status
