"""The Locust user: one terminal window planning a request of the mix, sending it and judging the answer;
and this process's load generator (`RUN`), built once and shared by every user and the event listeners."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
import orjson
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

from loadtest.locust_setup import HEADERS
from loadtest.runner import Trace, classify, trace_of
from loadtest.scenarios import Action, Planner
from loadtest.terminal import CALL_SERVICE

GATEWAY_LATENCY = "X-Gateway-Latency-Us"
PATIENCE_S = 0.05  # how long a user waits for a free terminal or card of the drawn scenario before drawing again


@dataclass
class Run:
    """This Locust process's load generator: built once (counters must carry over from one test to the next)."""

    planner: Planner | None = None
    ready: bool = False  # signed in and sending (false after a failed start)
    share: tuple[int, int] = (0, 1)  # (worker index, worker count)
    traces: list[Trace] | None = None  # None: no post-run check
    skipped: Counter[str] = field(default_factory=Counter)
    checking: gevent.Greenlet[..., None] | None = None  # the post-run check of the last test, awaited before exiting


RUN = Run()


def next_action(planner: Planner) -> Action | None:
    """The next planned request; waits briefly for a busy terminal or card of the drawn scenario rather than
    drawing another (which would skew the mix toward scenarios with more terminals), as the runner does."""
    name = planner.draw()
    deadline = time.monotonic() + PATIENCE_S
    while True:
        action = planner.plan(name)
        if action is not None:
            return action
        if time.monotonic() >= deadline or not planner.worth_waiting(name):
            RUN.skipped[name] += 1
            return None
        gevent.sleep(0.001)


def verdict(action: Action, outcome: str, resp: dict[str, Any] | None) -> str | None:
    """Why the answer is wrong for the scenario, or None when it is right."""
    if outcome not in action.expect:
        return f"{outcome}, expected {' or '.join(sorted(action.expect))}"
    if resp is not None and action.mac2 and not action.built.mac2_ok(resp):
        return "MAC2 does not verify"
    if resp is not None and not action.mac2 and (resp.get("dev_safe_info") or {}).get("mac2"):
        return "MAC2 where none is due"
    return None


class TerminalWindow(FastHttpUser):
    """One terminal window: plans a request of the mix, sends it, checks the answer, sends the next."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Size the PSAMs' windows for the users this process runs (known only as they start)."""
        if RUN.planner is not None:
            users = max(1, self.environment.runner.user_count)
            RUN.planner.fleet.set_windows(self.environment.parsed_options.windows, users)

    @task
    def send(self) -> None:
        """One request of the mix."""
        planner = RUN.planner
        if planner is None or not RUN.ready:  # the test could not start; the runner is quitting
            raise StopUser
        action = next_action(planner)
        if action is None:  # nothing of the drawn scenario free (or nothing to cancel yet)
            gevent.sleep(0.001)
            return
        resp: dict[str, Any] | None = None
        try:
            resp = self._send(action)
        finally:  # also when the user is stopped mid-request: the terminal and the card must come back
            planner.release(action, resp)

    def _send(self, action: Action) -> dict[str, Any] | None:
        with self.client.post(
            CALL_SERVICE,
            # bytes as they are: FastHttpSession sends str or bytes (its docstring), its annotation says str only.
            data=orjson.dumps(action.built.body),  # type: ignore[arg-type]
            headers=HEADERS,
            catch_response=True,
            name=action.scenario,
        ) as r:
            resp: dict[str, Any] | None = None
            digest: bytes | None = None
            if not r.status_code:  # no HTTP answer at all
                outcome = "CONNECT_ERROR"
            else:
                raw = r.content or b""
                digest = hashlib.sha256(raw).digest()
                outcome, resp = classify(r.status_code, raw)
            wrong = verdict(action, outcome, resp)
            if wrong is None:
                r.success()
            else:
                r.failure(wrong)
        gw_us = (r.headers or {}).get(GATEWAY_LATENCY)
        if gw_us and gw_us.isdigit():
            self.environment.events.request.fire(
                request_type="gateway-own",
                name=action.scenario,
                response_time=int(gw_us) / 1e3,
                response_length=0,
                exception=None,
                context={},
            )
        if RUN.traces is not None:
            RUN.traces.append(trace_of(action, outcome, resp, digest))
        return resp
