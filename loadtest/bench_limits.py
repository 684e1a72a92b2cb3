"""Micro-benchmarks of issue 11 items 7 and 8 on the hot path, part of `onecard bench micro`: what the rate
limiter costs an admitted request and a refused one (its journal read excluded), what the load gate's infno
peek costs against a full parse, and what building a shed answer costs. Prints numbers; asserts nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import orjson

from adapters.local_rate_limiter import LocalRateLimiter
from gateway.domain.codes import ResultCode
from gateway.domain.priority import Priority, admits, peek_infno
from gateway.domain.txtypes import priority_of
from gateway.http.load_gate import LoadGate
from gateway.http.metrics import Metrics
from gateway.pipeline.reply import Outcome, build_reply
from loadtest.terminal import SHANGHAI, SimCard, Terminal
from rules.limits import parse_rate_limits

Timer = Callable[[Callable[[], object], int], float]

_GENEROUS = "[rate_limits]\npsam = { rate = 1e6, burst = 1000000 }\ninstitution = { rate = 1e6, burst = 1000000 }\n"
_SPENT = "[rate_limits]\npsam = { rate = 1e-6, burst = 1 }\n"


def limits(per_op: Timer, n: int) -> list[tuple[str, float]]:
    """(name, µs per op) of each piece; `per_op` is the micro-benchmark's timer."""
    t = Terminal("H33020000013", "医院", "330200000001")
    t.sign_no = "3" * 30
    card = SimCard("330200D15600000500BF7C7A48FB4966", "A12345678", "33020000000000000001")
    body = orjson.dumps(t.settle("2207", card, [("X1", "2", "8.60"), ("X2", "1", "12.00")]).body)
    # 2,000 PSAMs of 200 institutions, taken in turn: the buckets' dicts are not all in the CPU cache.
    keys = [(f"H{i % 200:011d}", f"{i:012d}") for i in range(2000)]
    admit = LocalRateLimiter(parse_rate_limits(_GENEROUS), share=4)
    spent = LocalRateLimiter(parse_rate_limits(_SPENT))
    for code, psam in keys:
        spent.take(code, psam)
    turn = iter(range(10**12))

    def take_admitted() -> object:
        code, psam = keys[next(turn) % 2000]
        return admit.take(code, psam)

    def take_and_give_back() -> None:
        code, psam = keys[next(turn) % 2000]
        admit.take(code, psam)
        admit.give_back(code, psam)

    def take_refused() -> object:
        code, psam = keys[next(turn) % 2000]
        return spent.take(code, psam)

    gate = LoadGate(1000, Metrics())

    def gate_pass() -> None:
        if gate.enter(priority_of(body)):
            gate.leave()

    now = datetime.now(SHANGHAI)
    shed = Outcome(ResultCode.OVERLOADED, "shedding load: 1000 requests in flight (bound 1000); retry after 1 s")
    return [
        ("rate limit: take, admitted (2 buckets)", per_op(take_admitted, n)),
        ("rate limit: take + give back (a retry)", per_op(take_and_give_back, n)),
        ("rate limit: take, refused (no journal read)", per_op(take_refused, n)),
        ("shedding: infno peek of a 2207 body", per_op(lambda: peek_infno(body), n)),
        ("shedding: full json parse, for comparison", per_op(lambda: json.loads(body)["infno"], n)),
        ("shedding: priority_of + gate enter/leave", per_op(gate_pass, n)),
        ("shedding: shed answer (OVERLOADED envelope)", per_op(lambda: build_reply(shed, None, "r", now, now), n)),
        ("shedding: ESSENTIAL admits check", per_op(lambda: admits(Priority.ESSENTIAL, 999, 1000), n)),
    ]
