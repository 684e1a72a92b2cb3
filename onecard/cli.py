"""The `onecard` command: serve, core-sim, seed, demo, migrate, journal verify, reconcile.

Exit codes (gateway/exits.py): 0 success, 1 a finding, 2 usage or configuration, 3 a dependency unreachable;
expected failures are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from gateway.domain.errors import ConfigError
from gateway.exits import classify, needs_core, needs_postgres


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _serve(args: argparse.Namespace) -> int:
    from gateway.settings import load_settings
    from onecard.serve import serve

    settings = load_settings(
        args.config,
        os.environ,
        core_url=args.core_url,
        world_file=args.world,
        dev_mode=True if args.dev else None,
    )
    if args.world:
        _check_world(args.world)
    with needs_postgres(settings.pg_dsn), _port(args.host, args.port):
        return serve(settings, args.host, args.port, args.workers)


def _check_world(path: str) -> None:
    from loadtest.world import load_world

    try:
        load_world(path)
    except ValueError as exc:
        raise ConfigError(f"--world {path}: {exc}") from None


@contextlib.contextmanager
def _port(host: str, port: int) -> Iterator[None]:
    """A listening address that cannot be taken is a configuration error, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        raise


def _core_sim(args: argparse.Namespace) -> int:
    from coresim.app import run

    if args.world:
        _check_world(args.world)
    with _port(args.host, args.port):
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
    from adapters.pg_migrate import ensure_database, migrate
    from adapters.pg_pool import connect
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)

    async def go() -> list[str]:
        await ensure_database(settings.pg_dsn, settings.pg_connect_timeout_s)
        conn = await connect(settings.pg_dsn, settings.pg_connect_timeout_s)
        try:
            async with asyncio.timeout(settings.pg_bulk_timeout_s):
                return await migrate(conn)
        finally:
            conn.terminate()  # done, or timed out mid-statement: the server rolls back whatever was left open

    with needs_postgres(settings.pg_dsn):
        applied = asyncio.run(go())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from onecard.demo import run_demo

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
    from gateway.settings import load_settings
    from onecard.importer import run_import

    settings = load_settings(args.config, os.environ)
    with open(args.file, "rb"):  # a missing file is a usage error before any database is asked
        pass
    with needs_postgres(settings.pg_dsn):
        return asyncio.run(run_import(settings, args.file, fmt=args.format, source=args.source, every_line=args.all))


def _loadtest(args: argparse.Namespace) -> int:
    from loadtest.main import loadtest_main

    return loadtest_main(args.rest)


def _bench(args: argparse.Namespace) -> int:
    # A benchmark prints numbers; a log line per transaction would cost time and bury them.
    logging.getLogger().setLevel(logging.WARNING)
    if args.what == "blacklist":
        from loadtest.bench_blacklist import main as bench_blacklist

        return bench_blacklist(args.rest)
    if args.what == "import":
        from loadtest.bench_import import main as bench_import

        return bench_import(args.rest)
    if args.what == "gateway":
        from loadtest.bench_gateway import main as bench_gateway

        return bench_gateway(args.rest)
    from loadtest.microbench import main as micro

    micro(args.rest)
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _journal_verify(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from adapters.pg_journal_chain import verify
    from adapters.pg_pool import open_pg_for
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)

    async def go() -> int:
        pg = await open_pg_for(settings)
        try:
            res = await verify(pg.bulk, day=args.day, tz=ZoneInfo(settings.timezone), stale_s=args.stale_s)
        finally:
            await pg.close()
        scope = f"day {args.day.isoformat()}" if args.day else "whole chain"
        if res.ok:
            print(f"journal chain OK ({scope}): {res.rows} rows verified; head seq {res.head_seq} {res.head_hash}")
        else:
            print(f"journal chain BROKEN ({scope}) at journal id {res.first_broken_id}: {res.reason}")
            print(f"  {res.rows} rows verified before it; head seq {res.head_seq} {res.head_hash}")
        if res.unsealed:
            print(
                f"  {res.unsealed} completed rows not yet sealed after {args.stale_s:g} s"
                f" (oldest id {res.oldest_unsealed_id}): is a gateway with its sealer running?"
            )
        return 0 if res.ok else 1

    with needs_postgres(settings.pg_dsn):
        return asyncio.run(go())


def _reconcile(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from gateway.settings import load_settings
    from onecard.reconcile import fetch_core_ledger, run

    if args.to < args.from_:
        raise ConfigError("--to is before --from")
    settings = load_settings(args.config, os.environ)
    core = None
    if args.core_url:  # the core first: its ledger is what the journal is compared with
        with needs_core(args.core_url):
            core = asyncio.run(fetch_core_ledger(args.core_url, args.institution, args.from_, args.to))
    with needs_postgres(settings.pg_dsn):
        return asyncio.run(
            run(
                settings,
                args.institution,
                args.from_,
                args.to,
                tz=ZoneInfo(settings.timezone),
                core=core,
                as_json=args.json,
            )
        )


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
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (default 1). With N > 1 they share the port via SO_REUSEPORT under a supervisor"
        " that restarts any that dies, and /metrics answers with the sum over all workers",
    )
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

    jr = sub.add_parser("journal", help="the tamper-evident journal")
    jrsub = jr.add_subparsers(dest="journal_command", required=True)
    jv = jrsub.add_parser("verify", help="recompute the hash chain; exit 0 intact, 1 broken (names the first row)")
    jv.add_argument("--day", metavar="DATE", type=_date, help="only the rows completed on this local date (YYYY-MM-DD)")
    jv.add_argument("--stale-s", type=float, default=60.0, help="report DONE rows unsealed for longer (default 60)")
    jv.add_argument("--config", help="settings file (TOML)")
    jv.set_defaults(func=_journal_verify)

    rc = sub.add_parser("reconcile", help="an institution's totals and breaks, against the core with --core-url")
    rc.add_argument("--institution", required=True, help="fixmedins_code")
    rc.add_argument(
        "--from", dest="from_", metavar="DATE", type=_date, required=True, help="first local date (YYYY-MM-DD)"
    )
    rc.add_argument("--to", metavar="DATE", type=_date, required=True, help="last local date, inclusive (YYYY-MM-DD)")
    rc.add_argument("--core-url", help="insurance core (simulator) base URL: compare with its ledger")
    rc.add_argument("--json", action="store_true", help="print JSON")
    rc.add_argument("--config", help="settings file (TOML)")
    rc.set_defaults(func=_reconcile)

    b = sub.add_parser("bench", help="benchmarks that print numbers (see docs/benchmarks.md)")
    b.add_argument("what", choices=["blacklist", "import", "micro", "gateway"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options (--help)")
    b.set_defaults(func=_bench)

    lt = sub.add_parser(
        "loadtest", help="load the gateway with a simulated fleet; report, plot, post-run check", add_help=False
    )
    lt.add_argument("rest", nargs=argparse.REMAINDER, help="the load tester's own options (--help)")
    lt.set_defaults(func=_loadtest)

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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadtest"]:  # its options are its own (loadtest/main.py), --help included
        _setup_logging(False)
        return _loadtest(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except Exception as exc:
        known = classify(exc)
        if known is None:
            raise
        code, line = known
        print(f"onecard: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
