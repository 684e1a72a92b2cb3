"""The load engine: sends planned requests over pooled keep-alive connections under a closed model (N terminals,
each sending its next request when answered) or an open model (arrivals at a rate, constant, a ramp or steps,
whatever the answers do), and records a `Sample` for the report and a `Trace` for the post-run check.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import yarl

from loadtest.report import Sample
from loadtest.scenarios import Action, Planner
from loadtest.terminal import CALL_SERVICE, fen


@dataclass(frozen=True, slots=True)
class Trace:
    """What a terminal was told, for the post-run check against the journal and the core."""

    fixmedins_code: str
    msgid: str
    infno: str
    scenario: str
    outcome: str
    infcode: int | None
    response_sha256: bytes | None
    setl_id: str | None = None  # a settlement's id, or the cancelled settlement's id for a cancel
    acct_pay: int = 0
    fund_pay: int = 0
    cash_pay: int = 0
    mdtrt_id: str | None = None  # issue 12: the visit a 2201 registered or a settlement settled


@dataclass
class Recorder:
    """Samples and traces of one run, with the run's clock."""

    t0: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # scenario -> plans with nothing free
    late_s: float = 0.0  # open model: the worst delay of a send behind its arrival time

    def now(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.t0


class Sender:
    """POSTs terminal requests to the gateway over a pool of keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout_s: float = 30.0,
        tls_for: Callable[[str], ssl.SSLContext] | None = None,
    ) -> None:
        self.url = yarl.URL(base_url.rstrip("/") + CALL_SERVICE)
        self.connections, self.timeout_s = connections, timeout_s
        # With client certificates (bench --tls) each institution has a pool of its own, with its certificate.
        self.tls_for = tls_for
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.session = self._session(None)

    def _session(self, ctx: ssl.SSLContext | None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=60, ssl=ctx or True),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        """Close the pools."""
        await self.session.close()
        for s in self.sessions.values():
            await s.close()

    async def call(self, body: dict[str, Any]) -> tuple[int, bytes, str | None]:
        """Status, body and the X-Gateway-Latency-Us header of one request."""
        session = self.session
        if self.tls_for is not None:
            code = body["fixmedins_code"]
            session = self.sessions.get(code) or self.sessions.setdefault(code, self._session(self.tls_for(code)))
        async with session.post(self.url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.read(), r.headers.get("X-Gateway-Latency-Us")

    async def sign_in_all(self, sites: list[Any], parallel: int = 32) -> None:
        """Sign every terminal in (9001).

        Raises:
            RuntimeError: a terminal could not sign in (names it and the gateway's answer).
        """
        sem = asyncio.Semaphore(parallel)

        async def one(site: Any) -> None:
            async with sem:
                status, raw, _ = await self.call(site.terminal.sign_in().body)
            try:
                resp = orjson.loads(raw)
            except orjson.JSONDecodeError:
                resp = None
            if not isinstance(resp, dict):  # not a gateway at that address
                raise RuntimeError(f"{self.url} did not answer 9001 as the gateway does: HTTP {status} {raw[:120]!r}")
            if status != 200 or resp.get("infcode") != 0:
                hint = ""
                if resp.get("err_code") == "REPLAY":
                    hint = " (counters of an earlier run against this gateway: pass that run's --state file)"
                raise RuntimeError(
                    f"PSAM {site.terminal.psam_no} could not sign in: {resp.get('err_code') or status}"
                    f" {resp.get('err_msg', raw[:200])!r}{hint}"
                )
            site.terminal.sign_no = resp["output"]["signinoutb"]["sign_no"]

        await asyncio.gather(*(one(s) for s in sites))


async def execute(sender: Sender, planner: Planner, action: Action, rec: Recorder) -> None:
    """Send one planned request, record it, and give back what it leased."""
    t_sent = rec.now()
    start = time.perf_counter()
    resp: dict[str, Any] | None = None
    gw_ms: float | None = None
    digest: bytes | None = None
    try:
        status, raw, gw_us = await sender.call(action.built.body)
        whole_ms = (time.perf_counter() - start) * 1e3
        gw_ms = int(gw_us) / 1e3 if gw_us and gw_us.isdigit() else None
        digest = hashlib.sha256(raw).digest()
        outcome, resp = classify(status, raw)
    except (TimeoutError, aiohttp.ClientError, OSError):
        whole_ms = (time.perf_counter() - start) * 1e3
        outcome = "CONNECT_ERROR"
    mac2_ok: bool | None = None
    if resp is not None and action.mac2:
        mac2_ok = action.built.mac2_ok(resp)
    elif resp is not None:
        mac2_ok = None if not (resp.get("dev_safe_info") or {}).get("mac2") else False
    rec.samples.append(
        Sample(t_sent, whole_ms, gw_ms, action.scenario, action.infno, outcome, outcome in action.expect, mac2_ok)
    )
    rec.traces.append(trace_of(action, outcome, resp, digest))
    planner.release(action, resp)


def classify(status: int, raw: bytes) -> tuple[str, dict[str, Any] | None]:
    """The outcome of an answer (its err_code, "OK", or HTTP_<status> when it is not a gateway answer) and the
    answer itself (None when it is not a gateway answer)."""
    try:
        resp = orjson.loads(raw)
    except orjson.JSONDecodeError:
        resp = None
    if isinstance(resp, dict) and "infcode" in resp:
        return resp.get("err_code") or ("OK" if resp.get("infcode") == 0 else f"HTTP_{status}"), resp
    return f"HTTP_{status}", None


def trace_of(action: Action, outcome: str, resp: dict[str, Any] | None, digest: bytes | None) -> Trace:
    body = action.built.body
    setl: dict[str, Any] = {}
    mdtrt_id = None
    if resp is not None and resp.get("infcode") == 0:
        setl = (resp.get("output") or {}).get("setlinfo") or {}
        mdtrt_id = setl.get("mdtrt_id") or ((resp.get("output") or {}).get("data") or {}).get("mdtrt_id")
    setl_id = setl.get("setl_id")
    if action.scenario == "cancel":
        setl_id = body["input"]["data"]["setl_id"]
    return Trace(
        body["fixmedins_code"],
        body["msgid"],
        body["infno"],
        action.scenario,
        outcome,
        resp.get("infcode") if resp is not None else None,
        digest,
        setl_id,
        fen(setl.get("acct_pay", 0)),
        fen(setl.get("fund_pay_sumamt", 0)),
        fen(setl.get("psn_cash_pay", 0)),
        mdtrt_id,
    )


def _next_action(planner: Planner, rec: Recorder) -> Action | None:
    name = planner.draw()
    action = planner.plan(name)
    if action is None:
        rec.skipped[name] = rec.skipped.get(name, 0) + 1
    return action


async def _next_action_waiting(planner: Planner, rec: Recorder, patience_s: float = 0.05) -> Action | None:
    """The next planned request; waits briefly for a busy terminal or card of the drawn scenario rather than
    drawing another (which would skew the mix toward scenarios with more terminals)."""
    name = planner.draw()
    deadline = rec.now() + patience_s
    while True:
        action = planner.plan(name)
        if action is not None:
            return action
        if rec.now() >= deadline or not planner.worth_waiting(name):
            rec.skipped[name] = rec.skipped.get(name, 0) + 1
            return None
        await asyncio.sleep(0.001)


async def run_closed(sender: Sender, planner: Planner, rec: Recorder, *, concurrency: int, seconds: float) -> None:
    """`concurrency` terminals send back to back for `seconds`."""

    async def lane() -> None:
        while rec.now() < seconds:
            action = await _next_action_waiting(planner, rec)
            if action is None:  # every terminal or card of the scenario busy, or nothing to cancel yet
                continue
            await execute(sender, planner, action, rec)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


Rate = Callable[[float], float]


def parse_rate(rate: float | None, ramp: str | None, steps: str | None, seconds: float) -> Rate:
    """The arrival rate over time: `--rate R`, `--ramp A:B` (linear from A to B per second over the run) or
    `--steps R1xS1,R2xS2,...` (R1 per second for S1 seconds, then R2, ...; the last rate holds).

    Raises:
        ValueError: none or several given, or a rate that is not a positive number.
    """
    given = [x for x in (rate, ramp, steps) if x is not None]
    if len(given) != 1:
        raise ValueError("the open model needs exactly one of --rate, --ramp, --steps")
    if rate is not None:
        if rate <= 0:
            raise ValueError("--rate must be positive")
        return lambda _t: rate
    if ramp is not None:
        a, sep, b = ramp.partition(":")
        try:
            lo, hi = float(a), float(b)
        except ValueError:
            raise ValueError("--ramp must look like 100:800 (per second, from:to)") from None
        if not sep or lo <= 0 or hi <= 0:
            raise ValueError("--ramp must look like 100:800 with positive rates")
        return lambda t: lo + (hi - lo) * min(max(t / seconds, 0.0), 1.0)
    assert steps is not None
    plan: list[tuple[float, float]] = []
    end = 0.0
    for part in steps.split(","):
        r, sep, s = part.strip().partition("x")
        try:
            rv, sv = float(r), float(s)
        except ValueError:
            raise ValueError("--steps must look like 100x10,200x10 (rate x seconds, ...)") from None
        if not sep or rv <= 0 or sv <= 0:
            raise ValueError("--steps must look like 100x10,200x10 with positive rates and seconds")
        end += sv
        plan.append((end, rv))

    def stepped(t: float) -> float:
        return next((rv for until, rv in plan if t < until), plan[-1][1])

    return stepped


async def run_open(sender: Sender, planner: Planner, rec: Recorder, *, rate: Rate, seconds: float) -> None:
    """Arrivals at `rate(t)` per second for `seconds`, each sent when due whether or not others were answered.
    An arrival that finds no free terminal or card is recorded as outcome NO_TERMINAL (the fleet is too small
    for the rate)."""
    tasks: set[asyncio.Task[None]] = set()
    due = 0.0
    while due < seconds:
        now = rec.now()
        while due <= now and due < seconds:
            action = _next_action(planner, rec)
            if action is None:
                rec.samples.append(Sample(due, 0.0, None, "-", "-", "NO_TERMINAL", False, None))
            else:
                rec.late_s = max(rec.late_s, now - due)
                task = asyncio.create_task(execute(sender, planner, action, rec))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            due += 1.0 / rate(due)
        await asyncio.sleep(max(0.0, due - rec.now()))
    if tasks:
        await asyncio.gather(*tasks)
