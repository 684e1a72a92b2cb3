"""The baseline for `onecard bench gateway`: a bare aiohttp server that forwards each terminal request, as is,
to the same insurance-core simulator over a pooled keep-alive client and returns the core's answer. It does
nothing else (no parsing, cryptography, storage or rules), so it measures what one HTTP hop in front of the
core costs on this machine: the ceiling any gateway written this way could reach.

    python -m loadtest.passthrough --port 8081 --core-url http://127.0.0.1:8090 [--workers N]

With `--workers N`, N processes share the port (SO_REUSEPORT), like `onecard serve --workers N`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys

import aiohttp
import yarl
from aiohttp import web

from coresim.app import new_event_loop
from loadtest.terminal import CALL_SERVICE

_CLIENT = web.AppKey("client", aiohttp.ClientSession)
_CORE = web.AppKey("core", yarl.URL)


async def forward(request: web.Request) -> web.Response:
    """Send the body to the core and its answer back."""
    body = await request.read()
    async with request.app[_CLIENT].post(
        request.app[_CORE], data=body, headers={"Content-Type": "application/json"}
    ) as r:
        return web.Response(body=await r.read(), status=r.status, content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    """Alive."""
    return web.json_response({"status": "ok"})


def make_app(core_url: str) -> web.Application:
    """The pass-through app."""
    app = web.Application()
    app[_CORE] = yarl.URL(core_url.rstrip("/") + CALL_SERVICE)

    async def client(app: web.Application):  # type: ignore[no-untyped-def]
        app[_CLIENT] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60), cookie_jar=aiohttp.DummyCookieJar()
        )
        yield
        await app[_CLIENT].close()

    app.cleanup_ctx.append(client)
    app.router.add_post(CALL_SERVICE, forward)
    app.router.add_get("/healthz", healthz)
    return app


def _serve(host: str, port: int, core_url: str) -> None:
    web.run_app(make_app(core_url), host=host, port=port, access_log=None, print=None, reuse_port=True,
                loop=new_event_loop())  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.passthrough", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--core-url", required=True)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    if args.workers == 1:
        _serve(args.host, args.port, args.core_url)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(args.host, args.port, args.core_url)) for _ in range(args.workers)]
    for p in procs:
        p.start()

    def stop(_signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
