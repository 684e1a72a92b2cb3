"""The locustfile's setup: its options, the check of them, this process's share of the world and its fleet,
and the terminals' sign-in (9001) with a client gevent can run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import gevent.pool
import orjson
import requests
from locust.runners import WorkerRunner
from requests.adapters import HTTPAdapter

from loadtest.fleet import Fleet, Site
from loadtest.runner import classify
from loadtest.scenarios import Planner, parse_mix
from loadtest.terminal import CALL_SERVICE
from loadtest.world import load_world

log = logging.getLogger("onecard.locust")
HEADERS = {"Content-Type": "application/json"}
SIGN_IN_PARALLEL = 32


class SetupError(Exception):
    """This process cannot send: bad options, a world without terminals for it, a terminal that cannot sign in."""


def add_options(parser: Any) -> None:
    """This file's options, beside Locust's own."""
    group = parser.add_argument_group("onecard", "the onecard gateway's load (loadtest/locustfile.py)")
    group.add_argument("--world", default="", help="the seed world the gateway was started with (required)")
    group.add_argument("--mix", default="default", help="scenario weights name=w,... or 'default' or 'settle'")
    group.add_argument("--pg-dsn", default="", help="the gateway's database, for the post-run check")
    group.add_argument("--core-url", default="", help="the core simulator, for the post-run check")
    group.add_argument("--fresh-core", action="store_true", help="the check also compares account balances")
    group.add_argument("--state", default="", help="file keeping card ATCs and PSAM tseqs between runs")
    group.add_argument("--windows", type=int, default=0, help="counter windows sharing each PSAM (0: enough)")
    group.add_argument("--seed", type=int, default=7, help="seed of the scenario draws")


def validate(opts: Any, *, distributed: bool) -> None:
    """Raises SetupError naming the first bad option."""
    if not opts.world:
        raise SetupError("--world is required: the seed world the gateway was started with")
    if not Path(opts.world).is_file():
        raise SetupError(f"--world {opts.world}: no such file")
    try:
        parse_mix(opts.mix)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if bool(opts.pg_dsn) != bool(opts.core_url):
        raise SetupError("the post-run check needs both --pg-dsn and --core-url")
    if opts.fresh_core and (distributed or not opts.pg_dsn):
        raise SetupError("--fresh-core needs --pg-dsn and --core-url and one Locust process (not --master)")
    if opts.windows < 0:
        raise SetupError("--windows must not be negative")


def share(environment: Any) -> tuple[int, int]:
    """(worker index, worker count) of this process; raises SetupError for a worker beyond the master's count."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return 0, 1
    count = int(getattr(environment.parsed_options, "expect_workers", 1) or 1)
    if not 0 <= runner.worker_index < count:
        raise SetupError(
            f"this worker has index {runner.worker_index} but the master expects {count} workers: start the master"
            " with --expect-workers equal to the number of workers (each takes its own cards and PSAMs)"
        )
    return runner.worker_index, count


def share_of(world: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """Worker `index` of `count`'s part of the world: every count-th institution (with its PSAMs) and the cards of
    every count-th person, so no two workers hold the same PSAM or card. Persons and the catalogue stay whole."""
    if count == 1:
        return world
    position = {p["psn_no"]: i for i, p in enumerate(world["persons"])}
    return {
        **world,
        "institutions": [x for i, x in enumerate(world["institutions"]) if i % count == index],
        "cards": [c for c in world["cards"] if position[c["psn_no"]] % count == index],
    }


def build_planner(environment: Any, index: int, count: int) -> Planner:
    """The planner over this process's fleet (state loaded from --state); raises SetupError for an empty share."""
    opts = environment.parsed_options
    world = load_world(Path(opts.world))
    fleet = Fleet(share_of(world, index, count), seed=opts.seed)
    if not fleet.all_sites or not len(fleet.verified):
        where = f"worker {index} of {count}" if count > 1 else "this world"
        raise SetupError(f"{where} has no active PSAM or no usable card: use fewer workers or a bigger world")
    if opts.state and Path(opts.state).exists():
        fleet.load_state(json.loads(Path(opts.state).read_text()))
    log.info(
        "fleet%s: %d PSAMs, %d cards",
        f" (worker {index} of {count})" if count > 1 else "",
        len(fleet.all_sites),
        len(fleet.cards),
    )
    return Planner(fleet, world, parse_mix(opts.mix), seed=opts.seed + index)


def sign_in_all(host: str, sites: list[Site]) -> None:
    """Sign every terminal in (9001), as `loadtest.runner.Sender.sign_in_all` does, with a client gevent can run.

    Raises:
        SetupError: a terminal could not sign in (names it and the gateway's answer).
    """
    url = host.rstrip("/") + CALL_SERVICE
    with requests.Session() as http:
        http.mount("http://", HTTPAdapter(pool_maxsize=SIGN_IN_PARALLEL))

        def one(site: Site) -> str | None:
            try:
                r = http.post(url, data=orjson.dumps(site.terminal.sign_in().body), headers=HEADERS, timeout=30)
            except requests.RequestException as exc:
                return f"PSAM {site.terminal.psam_no} could not sign in: {exc}"
            outcome, resp = classify(r.status_code, r.content)
            if resp is not None and outcome == "OK":
                site.terminal.sign_no = resp["output"]["signinoutb"]["sign_no"]
                return None
            said = f"{outcome}: {resp.get('err_msg')}" if resp is not None else repr(r.content[:200])
            hint = ""
            if outcome == "REPLAY":
                hint = (
                    " (this gateway saw the PSAM's counters before: pass the --state file of the last run against it)"
                )
            return f"PSAM {site.terminal.psam_no} could not sign in: HTTP {r.status_code} {said}{hint}"

        errors = [e for e in gevent.pool.Pool(SIGN_IN_PARALLEL).map(one, sites) if e]
    if errors:
        more = f" (and {len(errors) - 1} more terminals)" if len(errors) > 1 else ""
        raise SetupError(errors[0] + more)
