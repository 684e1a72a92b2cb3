"""What each `onecard` operator command is built from, so that no command names an adapter: the feed writer
of an import, the journal verifier, reconciliation's two sides (the journal and the insurance core, through
its port), and a database for the embedded demo servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, tzinfo
from pathlib import Path

from adapters.pg_audit import PgAuditTrail
from adapters.pg_feed_writer import PgFeedWriter
from adapters.pg_journal_archive import ArchiveRefused, ArchiveResult, archive
from adapters.pg_journal_verify import verify
from adapters.pg_migrate import create_database
from adapters.pg_operators import PgOperators
from adapters.pg_reconcile import PgReconcileReads
from gateway.bootstrap.stores import command_core, command_pg, migrate_database
from gateway.domain.audit import AuditVerdict
from gateway.domain.chain import VerifyResult
from gateway.domain.reconcile import CoreRecord
from gateway.ports.blacklist import FeedWriter
from gateway.ports.operators import AuditTrail, OperatorAccounts
from gateway.ports.reconcile import ReconcileReads
from gateway.settings import Settings


@asynccontextmanager
async def feed_writer_for(settings: Settings) -> AsyncIterator[FeedWriter]:
    """The feed writer of `onecard blacklist import`: a small pool of its own, the bulk deadline."""
    async with command_pg(settings) as pg:
        yield PgFeedWriter(pg.bulk)


async def verify_journal(settings: Settings, *, day: date | None, tz: tzinfo, stale_s: float) -> VerifyResult:
    """`onecard journal verify`: the hash chain recomputed (all of it, or one day's stretch)."""
    async with command_pg(settings) as pg:
        return await verify(pg.bulk, day=day, tz=tz, stale_s=stale_s)


async def archive_journal(settings: Settings, *, before: datetime, out: Path) -> ArchiveResult:
    """`onecard journal archive` (issue 11 item 9): DONE rows completed before `before` to `out`, then deleted.

    Raises:
        FileExistsError: `out` exists.
        JournalArchiveRefused: the chain does not verify where it would be archived.
    """
    async with command_pg(settings) as pg:
        return await archive(pg.bulk, before, out)


JournalArchiveRefused = ArchiveRefused


@asynccontextmanager
async def reconcile_reads(settings: Settings) -> AsyncIterator[ReconcileReads]:
    """The journal's side of `onecard reconcile`."""
    async with command_pg(settings) as pg:
        yield PgReconcileReads(pg.bulk)


async def core_settlements(
    core_url: str,
    fixmedins_code: str,
    begin: date,
    end: date,
    *,
    timeout_s: float,
    settings: Settings | None = None,
) -> list[CoreRecord]:
    """The core's side of `onecard reconcile`, through the core port (an https core with `settings`' TLS files).

    Raises:
        CoreUnavailable, CoreRejected: as the port does.
        ConfigError: a TLS file of `settings` cannot be used.
    """
    core = command_core(core_url, settings)
    try:
        return await core.settlements(fixmedins_code, begin, end, timeout=timeout_s)
    finally:
        await core.close()


async def demo_database(admin_dsn: str, name: str) -> str:
    """A database for the embedded demo servers (created unless it exists); the DSN that reaches it."""
    return await create_database(admin_dsn, name)


# Issue 11 items 5-6: `onecard admin user ...` and `onecard admin audit verify`.
@asynccontextmanager
async def operator_accounts(settings: Settings) -> AsyncIterator[tuple[OperatorAccounts, AuditTrail]]:
    """The operators of `onecard admin user` (the database migrated first) and the audit trail they are
    recorded in."""
    await migrate_database(settings)
    async with command_pg(settings) as pg:
        yield PgOperators(pg), PgAuditTrail(pg)


async def verify_audit(settings: Settings) -> AuditVerdict:
    """`onecard admin audit verify`: the audit trail's chain recomputed."""
    async with command_pg(settings) as pg:
        return await PgAuditTrail(pg.bulk).verify()
