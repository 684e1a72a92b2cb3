"""`onecard admin user add|list|revoke|rotate` and `onecard admin audit verify` (issue 11 items 5, 6): their
arguments and bodies. A token is printed once, on stdout, and never logged; every change to an operator is
itself appended to the audit trail (who: `cli:<login>`, method `CLI`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.bootstrap.exits import needs_postgres
from gateway.domain.errors import ConfigError

if TYPE_CHECKING:
    from gateway.ports.operators import OperatorAccounts

Body = Callable[["OperatorAccounts"], Awaitable[tuple[int, bool]]]


def add_admin_parser(sub: Any) -> None:
    """The `admin` command and its subcommands, on the CLI's subparsers."""
    ad = sub.add_parser("admin", help="named operators and the admin audit trail")
    adsub = ad.add_subparsers(dest="admin_command", required=True)
    us = adsub.add_parser("user", help="operators of the admin API (tokens shown once)")
    ussub = us.add_subparsers(dest="user_command", required=True)
    ua = ussub.add_parser("add", help="a new operator; prints its token once")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=["operator", "feed", "auditor", "monitor"])
    ua.add_argument("--region", help="for --role feed: the 6-digit region it sends for")
    ua.set_defaults(func=user_add)
    ul = ussub.add_parser("list", help="every operator (never a token)")
    ul.set_defaults(func=user_list)
    ur = ussub.add_parser("revoke", help="revoke an operator at once (every worker within operator_cache_s)")
    ur.add_argument("name")
    ur.set_defaults(func=user_revoke)
    ut = ussub.add_parser("rotate", help="a new token for an operator; the old one stops working")
    ut.add_argument("name")
    ut.set_defaults(func=user_rotate)
    au = adsub.add_parser("audit", help="the admin audit trail")
    ausub = au.add_subparsers(dest="audit_command", required=True)
    av = ausub.add_parser("verify", help="recompute the audit trail's hash chain; exit 0 intact, 1 broken")
    av.set_defaults(func=audit_verify)
    for p in (ua, ul, ur, ut, av):
        p.add_argument("--config", help="settings file (TOML)")


def _run(args: argparse.Namespace, action: str, body: Body) -> int:
    from gateway.bootstrap.commands import operator_accounts
    from gateway.domain.audit import AuditEntry
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)

    async def go() -> int:
        async with operator_accounts(settings) as (accounts, trail):
            rc, changed = await body(accounts)
            if changed:
                who = f"cli:{_login()}"
                entry = AuditEntry(datetime.now(UTC), who, None, "local", "CLI", action, hashlib.sha256().digest(), rc)
                await trail.append(entry)
            return int(rc)

    with needs_postgres(settings.pg_dsn):
        return asyncio.run(go())


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def user_add(args: argparse.Namespace) -> int:
    """`admin user add NAME --role ROLE [--region R]`."""
    from gateway.domain.operators import check_name, check_role

    try:
        name = check_name(args.name)
        role, region = check_role(args.role, args.region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def body(accounts: OperatorAccounts) -> tuple[int, bool]:
        try:
            token = await accounts.add(name, role, region)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        print(token)
        where = f" for region {region}" if region else ""
        print(f"operator {name} ({role.value}{where}) added: the token above is shown once", file=sys.stderr)
        return 0, True

    scope = f" --region {region}" if region else ""
    return _run(args, f"user add {name} --role {role.value}{scope}", body)


def user_list(args: argparse.Namespace) -> int:
    """`admin user list`."""

    async def body(accounts: OperatorAccounts) -> tuple[int, bool]:
        rows = await accounts.list()
        print(f"{'name':<24} {'role':<9} {'region':<7} {'state':<8} created / rotated / revoked")
        for r in rows:
            state = "revoked" if r.revoked_at else "live"
            print(
                f"{r.name:<24} {r.role.value:<9} {r.region or '-':<7} {state:<8} {r.created_at}"
                f" / {r.rotated_at or '-'} / {r.revoked_at or '-'}"
            )
        return 0, False

    return _run(args, "user list", body)


def user_revoke(args: argparse.Namespace) -> int:
    """`admin user revoke NAME`: 0 revoked, 1 no live operator of that name."""

    async def body(accounts: OperatorAccounts) -> tuple[int, bool]:
        if await accounts.revoke(args.name):
            print(f"operator {args.name} revoked", file=sys.stderr)
            return 0, True
        print(f"onecard: no live operator named {args.name!r}", file=sys.stderr)
        return 1, False

    return _run(args, f"user revoke {args.name}", body)


def user_rotate(args: argparse.Namespace) -> int:
    """`admin user rotate NAME`: prints the new token once; 1 if there is no live operator of that name."""

    async def body(accounts: OperatorAccounts) -> tuple[int, bool]:
        token = await accounts.rotate(args.name)
        if token is None:
            print(f"onecard: no live operator named {args.name!r}", file=sys.stderr)
            return 1, False
        print(token)
        print(f"operator {args.name}: new token above (shown once); the old one no longer works", file=sys.stderr)
        return 0, True

    return _run(args, f"user rotate {args.name}", body)


def audit_verify(args: argparse.Namespace) -> int:
    """`admin audit verify`: 0 intact, 1 broken (names the first row that does not match)."""
    from gateway.bootstrap.commands import verify_audit
    from gateway.settings import load_settings

    settings = load_settings(args.config, os.environ)
    with needs_postgres(settings.pg_dsn):
        res = asyncio.run(verify_audit(settings))
    if res.ok:
        print(f"audit trail OK: {res.rows} rows verified; head seq {res.head_seq} {res.head_hash}")
        return 0
    print(f"audit trail BROKEN at seq {res.first_broken_seq}: {res.reason}")
    print(f"  {res.rows} rows verified before it; head seq {res.head_seq} {res.head_hash}")
    return 1
