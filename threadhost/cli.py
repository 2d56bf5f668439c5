"""The `threadhost` command: `up` runs a whole stack on this machine until Ctrl-C or
SIGTERM; `serve` serves one role beside its Dapr sidecar (the image's command); `chat`
talks to a thread from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from pathlib import Path

from threadhost import chat
from threadhost.processes import StartupError
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadhost")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run placement, scheduler and threadhost on loopback")
    up.add_argument("--port", type=int, default=8000, help="the API's port (default 8000)")
    up.add_argument(
        "--profile",
        default="sqlite",
        choices=["sqlite", "redis", "postgres"],
        help="state store and pub/sub components (default sqlite)",
    )
    up.add_argument(
        "--split",
        action="store_true",
        help="run the gateway and the actor host as two apps with two sidecars",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=PROJECT_ROOT / ".data",
        help="state, scheduler data and logs (default .data)",
    )
    up.add_argument("--log-level", default="warn", help="daprd log level (default warn)")
    up.add_argument(
        "--listen",
        default="127.0.0.1",
        help="the API's address (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    serve = commands.add_parser("serve", help="serve one role beside its daprd (the image's)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    talk = commands.add_parser("chat", help="talk to a thread, replies streamed")
    chat.add_arguments(talk)
    return parser


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    config = StackConfig(
        bin_dir=dapr_bin_dir(),
        data_dir=args.data_dir.resolve(),
        profile=args.profile,
        log_level=args.log_level,
    )
    stack = Stack(config, split=args.split, api_port=args.port, listen=args.listen)
    started = time.monotonic()
    print(
        f"threadhost: starting ({args.profile} profile, {'split' if args.split else 'embedded'}"
        f" mode, logs in {config.data_dir / 'logs'})",
        flush=True,
    )
    try:
        stack.start()
    except StartupError as exc:
        print(f"threadhost: could not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"threadhost: healthy in {time.monotonic() - started:.1f} s; "
            f"API at {stack.api.url}/v1 (docs at {stack.api.url}/docs). Ctrl-C stops.",
            flush=True,
        )
        if config.process_env()["THREADHOST_AUTH_MODE"] == "none":
            print(
                "threadhost: WARNING: authentication is OFF (local development): every "
                "caller is 'anonymous'. Set THREADHOST_AUTH_MODE=jwt and a key to turn it on.",
                flush=True,
            )
        print(
            "threadhost: processes: " + ", ".join(f"{p.name}={p.pid}" for p in stack.processes()),
            flush=True,
        )
        while not stop.wait(1.0):
            dead = [p.name for p in stack.processes() if not p.alive()]
            if dead:
                print(f"threadhost: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("threadhost: stopping", flush=True)
        stack.stop()
        print("threadhost: stopped", flush=True)


SERVE_NEEDS = """\
The image serves one role beside its Dapr sidecar (docs/deploy.md: the compose file and
the Kubernetes manifests set all of this):
  THREADHOST_ROLE       gateway or actors (embedded, the default, serves both)
  DAPR_HTTP_PORT, DAPR_GRPC_PORT   its daprd's ports (3500 and 50001 by default)
  THREADHOST_AUTH_MODE  jwt (the default) with THREADHOST_JWT_SECRET,
                        THREADHOST_JWT_JWKS_FILE or THREADHOST_JWT_JWKS_URL; or none
  APP_API_TOKEN         the token its daprd sends (the same value on both), if set there"""


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.auth import Authenticator
    from threadhost.common.settings import get_settings

    try:  # what would stop the app as it starts, said before it does
        settings = get_settings()
        if settings.role in ("embedded", "gateway"):
            Authenticator(settings)
    except ValueError as exc:  # pydantic's errors are ValueErrors too
        print(f"threadhost: cannot start: {exc}\n\n{SERVE_NEEDS}", file=sys.stderr, flush=True)
        return 2
    # The app made inside uvicorn's own event loop, as `uvicorn --factory` makes it.
    uvicorn.run("threadhost.app:create_app", factory=True, host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "chat":
        with chat.terminal():
            try:
                return asyncio.run(chat.chat(args))
            except KeyboardInterrupt:
                print(file=sys.stderr)
                return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
