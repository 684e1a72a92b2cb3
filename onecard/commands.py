"""The bodies of the `onecard` commands (onecard/cli.py parses the arguments and maps failures to exit codes):
each takes the parsed arguments and returns its exit code; expected failures raise what gateway/bootstrap/exits.py
classifies."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from gateway.bootstrap.exits import needs_core, needs_postgres
from gateway.domain.errors import ConfigError


def serve(args: argparse.Namespace) -> int:
    """`onecard serve`: the gateway, in this process or under the supervisor with --workers N."""
    from gateway.settings import load_settings
    from onecard.serve import serve

    settings = load_settings(
        args.config,
        os.environ,
        core_url=args.core_url,
        world_file=args.world,
        dev_mode=True if args.dev else None,
        admin_host=getattr(args, "admin_host", None),  # issue 11 item 4
        admin_port=getattr(args, "admin_port", None),
        tls_cert=args.tls_cert,  # issue 11 items 1-2
        tls_key=args.tls_key,
        tls_client_ca=args.client_ca,
        tls_client_crl=args.client_crl,
        admin_tls_cert=getattr(args, "admin_tls_cert", None),  # issue 11 item 4
        admin_tls_key=getattr(args, "admin_tls_key", None),
        admin_tls_client_ca=getattr(args, "admin_client_ca", None),
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


def core_sim(args: argparse.Namespace) -> int:
    """`onecard core-sim`: the insurance-core simulator."""
    from coresim.app import run
    from coresim.tls import TlsFilesError, server_context

    if args.world:
        _check_world(args.world)
    context = None
    if args.tls_cert or args.tls_key or args.client_ca:  # issue 11 item 3
        if not (args.tls_cert and args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together (and --client-ca needs them)")
        try:
            context = server_context(args.tls_cert, args.tls_key, args.client_ca)
        except TlsFilesError as exc:
            raise ConfigError(str(exc)) from None
    with _port(args.host, args.port):
        run(args.host, args.port, args.world, ssl_context=context)
    return 0


def seed(args: argparse.Namespace) -> int:
    """`onecard seed`: write a deterministic seed world."""
    from loadtest.world import generate, write_world

    if args.persons < 1:
        raise ConfigError("--persons must be at least 1")
    path = write_world(generate(persons=args.persons, seed=args.seed), Path(args.out))
    print(path)
    return 0


def migrate(args: argparse.Namespace) -> int:
    """`onecard migrate`: apply the database migrations."""
    from gateway.bootstrap.stores import migrate_database
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)
    with needs_postgres(settings.pg_dsn):
        applied = asyncio.run(migrate_database(settings))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def demo(args: argparse.Namespace) -> int:
    """`onecard demo`: start everything and run a visible scenario."""
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


def blacklist_import(args: argparse.Namespace) -> int:
    """`onecard blacklist import`: a feed file into the lists of record."""
    from gateway.settings import load_settings
    from onecard.importer import run_import

    settings = load_settings(args.config, os.environ)
    with open(args.file, "rb"):  # a missing file is a usage error before any database is asked
        pass
    with needs_postgres(settings.pg_dsn):
        return asyncio.run(run_import(settings, args.file, fmt=args.format, source=args.source, every_line=args.all))


def loadtest(args: argparse.Namespace) -> int:
    """`onecard loadtest`: the load tester, with its own options."""
    from loadtest.main import loadtest_main

    return loadtest_main(args.rest)


def bench(args: argparse.Namespace) -> int:
    """`onecard bench WHAT`: a benchmark that prints numbers."""
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
    if args.what == "visit":  # issue 12: sequential outpatient visits by reference
        from loadtest.bench_visit import main as bench_visit

        return bench_visit(args.rest)
    if args.what == "stay":  # issue 12: sequential inpatient stays
        from loadtest.bench_stay import main as bench_stay

        return bench_stay(args.rest)
    from loadtest.microbench import main as micro

    micro(args.rest)
    return 0


def journal_verify(args: argparse.Namespace) -> int:
    """`onecard journal verify`: recompute the hash chain; 0 intact, 1 broken."""
    from zoneinfo import ZoneInfo

    from gateway.bootstrap.commands import verify_journal
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)

    async def go() -> int:
        res = await verify_journal(settings, day=args.day, tz=ZoneInfo(settings.timezone), stale_s=args.stale_s)
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


def journal_archive(args: argparse.Namespace) -> int:
    """`onecard journal archive` (issue 11 item 9): archive-then-delete; 0 done, 1 chain broken, 2 usage."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from gateway.bootstrap.commands import JournalArchiveRefused, archive_journal
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)
    tz = ZoneInfo(settings.timezone)
    day = args.before
    if day is None:
        if settings.journal_retention_days is None:
            raise ConfigError("--before DATE is needed: journal_retention_days is not set (the journal is kept)")
        day = datetime.now(tz).date() - timedelta(days=settings.journal_retention_days)
    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists: an archive is never overwritten")

    async def go() -> int:
        try:
            res = await archive_journal(settings, before=datetime.combine(day, time(0), tz), out=out)
        except JournalArchiveRefused as exc:
            print(f"journal archive REFUSED, nothing written or deleted: {exc}")
            return 1
        if res.rows == 0:
            print(f"journal archive: no sealed row completed before {day.isoformat()}; nothing archived")
        else:
            print(
                f"journal archive: {res.rows} rows (seq {res.from_seq}..{res.to_seq}) written to {res.path} and"
                f" deleted; checkpoint seq {res.to_seq} {res.checkpoint_hash}"
            )
        return 0

    with needs_postgres(settings.pg_dsn):
        return asyncio.run(go())


def reconcile(args: argparse.Namespace) -> int:
    """`onecard reconcile`: an institution's totals and breaks, against the core with --core-url."""
    from zoneinfo import ZoneInfo

    from gateway.settings import load_settings
    from onecard.reconcile import fetch_core_ledger, run

    if args.to < args.from_:
        raise ConfigError("--to is before --from")
    settings = load_settings(args.config, os.environ)
    core = None
    if args.core_url:  # the core first: its ledger is what the journal is compared with
        with needs_core(args.core_url):
            core = asyncio.run(
                fetch_core_ledger(args.core_url, args.institution, args.from_, args.to, settings=settings)
            )
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
