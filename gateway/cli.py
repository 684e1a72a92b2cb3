"""The `onecard` command: serve, core-sim, seed, demo, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from gateway.domain.errors import ConfigError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.settings import load_settings

    settings = load_settings(
        args.config,
        os.environ,
        core_url=args.core_url,
        world_file=args.world,
        dev_mode=True if args.dev else None,
    )
    web.run_app(create_app(settings), host=args.host, port=args.port, access_log=None)
    return 0


def _core_sim(args: argparse.Namespace) -> int:
    from coresim.app import run

    run(args.host, args.port, args.world)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from loadtest.world import generate, write_world

    if args.persons < 1:
        raise ConfigError("--persons must be at least 1")
    path = write_world(generate(persons=args.persons, seed=args.seed), Path(args.out))
    print(path)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from adapters.pg_migrate import ensure_database, migrate
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)

    async def go() -> list[str]:
        await ensure_database(settings.pg_dsn)
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    try:
        return asyncio.run(
            run_demo(
                Path(args.workdir),
                host=args.host,
                port=args.port,
                core_port=args.core_port,
                persons=args.persons,
                once=args.once,
                embedded=args.embedded,
            )
        )
    except KeyboardInterrupt:
        print("\nstopped")
        return 0


def _blacklist_import(args: argparse.Namespace) -> int:
    from gateway.importer import run_import
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)
    return asyncio.run(run_import(settings.pg_dsn, args.file, fmt=args.format, source=args.source, every_line=args.all))


def _bench(args: argparse.Namespace) -> int:
    if args.what == "blacklist":
        from loadtest.bench_blacklist import main as bench_blacklist

        return bench_blacklist(args.rest)
    if args.what == "import":
        from loadtest.bench_import import main as bench_import

        return bench_import(args.rest)
    from loadtest.microbench import main as micro

    micro(args.rest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="onecard", description="Social security card settlement gateway")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--world", help="load a seed world (registry, cards, blacklist) at start-up")
    s.add_argument("--core-url", help="insurance core base URL (default $ONECARD_CORE_URL or http://127.0.0.1:8090)")
    s.add_argument("--dev", action="store_true", help="development mode: development keys allowed")
    s.add_argument("--config", help="settings file (TOML); the environment overrides it")
    s.set_defaults(func=_serve)

    c = sub.add_parser("core-sim", help="run the insurance-core simulator")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8090)
    c.add_argument("--world", help="seed world whose persons the core holds")
    c.set_defaults(func=_core_sim)

    w = sub.add_parser("seed", help="write a deterministic seed world")
    w.add_argument("--persons", type=int, default=1000)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--out", default="world")
    w.set_defaults(func=_seed)

    m = sub.add_parser("migrate", help="apply database migrations")
    m.add_argument("--config", help="settings file (TOML)")
    m.set_defaults(func=_migrate)

    bl = sub.add_parser("blacklist", help="blacklist lists of record")
    blsub = bl.add_subparsers(dest="blacklist_command", required=True)
    bi = blsub.add_parser("import", help="import a feed file (CSV or JSON lines), printing per-line results")
    bi.add_argument("file")
    bi.add_argument("--source", help="sender's 6-digit region: fills an empty source, refuses any other")
    bi.add_argument("--format", choices=["csv", "jsonl"], help="default: by file name (.csv, else jsonl)")
    bi.add_argument("--all", action="store_true", help="print accepted lines too, not only the others")
    bi.add_argument("--config", help="settings file (TOML)")
    bi.set_defaults(func=_blacklist_import)

    b = sub.add_parser("bench", help="benchmarks that print numbers (see docs/benchmarks.md)")
    b.add_argument("what", choices=["blacklist", "import", "micro"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options (--help)")
    b.set_defaults(func=_bench)

    d = sub.add_parser("demo", help="start everything and run a visible scenario")
    d.add_argument("--workdir", default="onecard-work", help="working folder (embedded servers, world)")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8080)
    d.add_argument("--core-port", type=int, default=8090)
    d.add_argument("--persons", type=int, default=2000)
    d.add_argument("--once", action="store_true", help="exit after the scenario instead of serving")
    d.add_argument(
        "--embedded",
        action="store_true",
        help="ignore configured and local servers; start embedded PostgreSQL and Redis",
    )
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `onecard` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"onecard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
