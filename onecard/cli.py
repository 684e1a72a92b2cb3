"""The `onecard` command line: serve, core-sim, seed, demo, migrate, journal verify, reconcile (their bodies:
onecard/commands.py).

Exit codes (gateway/bootstrap/exits.py): 0 success, 1 a finding, 2 usage or configuration, 3 a dependency unreachable;
expected failures are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from gateway.bootstrap.exits import classify
from onecard import commands
from onecard.admin_cli import add_admin_parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


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
    # issue 11 item 4: the admin listener (default $ONECARD_ADMIN_HOST/PORT; none: admin paths on --port)
    s.add_argument("--admin-host", help="admin listener host (default $ONECARD_ADMIN_HOST or 127.0.0.1)")
    s.add_argument("--admin-port", type=int, help="serve /admin/* and /metrics here only (default $ONECARD_ADMIN_PORT)")
    # issue 11 items 1-2: TLS on the terminal port (README "TLS and client certificates"); SIGHUP reloads the files
    s.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate chain; $ONECARD_TLS_CERT")
    s.add_argument("--tls-key", metavar="FILE", help="its PEM private key, unencrypted; $ONECARD_TLS_KEY")
    s.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require a client certificate chained to this PEM CA, naming the institution; $ONECARD_TLS_CLIENT_CA",
    )
    s.add_argument("--client-crl", metavar="FILE", help="PEM CRL of that CA, checked; $ONECARD_TLS_CLIENT_CRL")
    # issue 11 item 4: the admin listener's own certificate (README "Admin listener"); SIGHUP reloads it too
    s.add_argument(
        "--admin-tls-cert", metavar="FILE", help="admin port over HTTPS with this PEM chain; $ONECARD_ADMIN_TLS_CERT"
    )
    s.add_argument("--admin-tls-key", metavar="FILE", help="its PEM private key, unencrypted; $ONECARD_ADMIN_TLS_KEY")
    s.add_argument(
        "--admin-client-ca",
        metavar="FILE",
        help="admin clients need a certificate of this CA; $ONECARD_ADMIN_TLS_CLIENT_CA",
    )
    s.set_defaults(func=commands.serve)

    c = sub.add_parser("core-sim", help="run the insurance-core simulator")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8090)
    c.add_argument("--world", help="seed world whose persons the core holds")
    # issue 11 item 3: HTTPS, optionally requiring the gateway's client certificate
    c.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM; with --tls-key)")
    c.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM, unencrypted)")
    c.add_argument("--client-ca", metavar="FILE", help="require client certificates chained to this CA (PEM)")
    c.set_defaults(func=commands.core_sim)

    w = sub.add_parser("seed", help="write a deterministic seed world")
    w.add_argument("--persons", type=int, default=1000)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--out", default="world")
    w.set_defaults(func=commands.seed)

    m = sub.add_parser("migrate", help="apply database migrations")
    m.add_argument("--config", help="settings file (TOML)")
    m.set_defaults(func=commands.migrate)

    bl = sub.add_parser("blacklist", help="blacklist lists of record")
    blsub = bl.add_subparsers(dest="blacklist_command", required=True)
    bi = blsub.add_parser("import", help="import a feed file (CSV or JSON lines), printing per-line results")
    bi.add_argument("file")
    bi.add_argument("--source", help="sender's 6-digit region: fills an empty source, refuses any other")
    bi.add_argument("--format", choices=["csv", "jsonl"], help="default: by file name (.csv, else jsonl)")
    bi.add_argument("--all", action="store_true", help="print accepted lines too, not only the others")
    bi.add_argument("--config", help="settings file (TOML)")
    bi.set_defaults(func=commands.blacklist_import)

    jr = sub.add_parser("journal", help="the tamper-evident journal")
    jrsub = jr.add_subparsers(dest="journal_command", required=True)
    jv = jrsub.add_parser("verify", help="recompute the hash chain; exit 0 intact, 1 broken (names the first row)")
    jv.add_argument("--day", metavar="DATE", type=_date, help="only the rows completed on this local date (YYYY-MM-DD)")
    jv.add_argument("--stale-s", type=float, default=60.0, help="report DONE rows unsealed for longer (default 60)")
    jv.add_argument("--config", help="settings file (TOML)")
    jv.set_defaults(func=commands.journal_verify)
    # issue 11 item 9: retention
    ja = jrsub.add_parser("archive", help="archive DONE rows completed before a date to a file, then delete them")
    ja.add_argument("--before", metavar="DATE", type=_date, help="local date (default: today - journal_retention_days)")
    ja.add_argument("--out", required=True, metavar="FILE", help="the archive (JSON lines); never overwritten")
    ja.add_argument("--config", help="settings file (TOML)")
    ja.set_defaults(func=commands.journal_archive)

    add_admin_parser(sub)  # issue 11 items 5-6: admin user ..., admin audit verify

    rc = sub.add_parser("reconcile", help="an institution's totals and breaks, against the core with --core-url")
    rc.add_argument("--institution", required=True, help="fixmedins_code")
    rc.add_argument(
        "--from", dest="from_", metavar="DATE", type=_date, required=True, help="first local date (YYYY-MM-DD)"
    )
    rc.add_argument("--to", metavar="DATE", type=_date, required=True, help="last local date, inclusive (YYYY-MM-DD)")
    rc.add_argument("--core-url", help="insurance core (simulator) base URL: compare with its ledger")
    rc.add_argument("--json", action="store_true", help="print JSON")
    rc.add_argument("--config", help="settings file (TOML)")
    rc.set_defaults(func=commands.reconcile)

    b = sub.add_parser("bench", help="benchmarks that print numbers (see docs/benchmarks.md)")
    b.add_argument("what", choices=["blacklist", "import", "micro", "gateway", "visit", "stay"])  # issue 12
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options (--help)")
    b.set_defaults(func=commands.bench)

    lt = sub.add_parser(
        "loadtest", help="load the gateway with a simulated fleet; report, plot, post-run check", add_help=False
    )
    lt.add_argument("rest", nargs=argparse.REMAINDER, help="the load tester's own options (--help)")
    lt.set_defaults(func=commands.loadtest)

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
    d.set_defaults(func=commands.demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `onecard` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadtest"]:  # its options are its own (loadtest/main.py), --help included
        _setup_logging(False)
        return commands.loadtest(argparse.Namespace(rest=argv[1:]))
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
