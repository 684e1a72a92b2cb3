"""The post-run check (loadtest.check) over traces a load generator wrote to a file.

    python -m loadtest.check_cli TRACES.json --pg-dsn DSN --core-url URL [--world W --fresh-core]

The locustfile runs under gevent's monkey-patching, where asyncio and asyncpg must not run, so it writes its
traces with `dump_traces` and runs this module as a subprocess. Prints `check: ok — ...` or `check: FAILED — ...`
with the first problems of each kind, as `onecard loadtest` does. Exit status: 0 ok, 1 problems found (or the
check could not reach the database or the core), 2 bad arguments.

TRACES.json holds `{"format": 1, "traces": [...]}`, one object per request with the fields of
`loadtest.runner.Trace` (`response_sha256` in hex, or null).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from loadtest.check import check_run
from loadtest.main import check_line
from loadtest.runner import Trace
from loadtest.world import load_world

FORMAT = 1
_FIELDS = [f.name for f in dataclasses.fields(Trace)]


def dump_traces(traces: Iterable[Trace], path: Path) -> None:
    """Write traces for `load_traces` (and this command)."""
    rows = []
    for t in traces:
        row = {name: getattr(t, name) for name in _FIELDS}
        row["response_sha256"] = t.response_sha256.hex() if t.response_sha256 is not None else None
        rows.append(row)
    path.write_bytes(orjson.dumps({"format": FORMAT, "traces": rows}))


def load_traces(path: Path) -> list[Trace]:
    """Traces written by `dump_traces`.

    Raises:
        ValueError: the file is not a traces file of this format.
    """
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("traces"), list):
        raise ValueError(f"{path}: not a onecard traces file (format {FORMAT})")
    out = []
    for row in data["traces"]:
        digest = row.get("response_sha256")
        out.append(Trace(**{**row, "response_sha256": bytes.fromhex(digest) if digest else None}))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when it finds nothing wrong."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.check_cli", description=__doc__.split("\n")[0])
    ap.add_argument("traces", type=Path, help="traces file (dump_traces)")
    ap.add_argument("--pg-dsn", required=True, help="the gateway's database")
    ap.add_argument("--core-url", required=True, help="the core simulator's base URL")
    ap.add_argument("--world", type=Path, help="the seed world the core simulator started from")
    ap.add_argument(
        "--fresh-core",
        action="store_true",
        help="the core started from --world and saw no other traffic: also check every touched account's balance",
    )
    args = ap.parse_args(argv)
    if args.fresh_core and not args.world:
        ap.error("--fresh-core needs --world")
    try:
        traces = load_traces(args.traces)
        world: dict[str, Any] | None = load_world(args.world) if args.world else None
    except (OSError, ValueError) as exc:
        ap.error(str(exc))
    try:
        result = asyncio.run(check_run(traces, args.pg_dsn, args.core_url, world=world, fresh_core=args.fresh_core))
    except (OSError, TimeoutError, asyncpg.PostgresError, aiohttp.ClientError) as exc:  # database or core unreachable
        print(f"check: could not run — {type(exc).__name__}: {exc}")
        return 1
    check = result.as_dict()
    print(f"check: {check_line(check)}")
    if not check["ok"]:
        print(f"problem counts: {json.dumps(check['problem_counts'], sort_keys=True)}")
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
