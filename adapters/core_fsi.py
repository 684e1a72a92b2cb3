"""FsiCore: the insurance core over the FSI-style callService JSON interface (aiohttp client).

Errors are mapped in `_mapped` alone. Whether anything was sent is known exactly (a trace hook marks
the moment the request headers are written): nothing sent is `CoreUnavailable`; sent but no usable
answer is `CoreTimeout` for writes (the core may have acted) and `CoreUnavailable` for reads. An https core
is reached through `adapters.core_tls` (TLS 1.2, so a refused handshake is always "not reached").
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
import orjson
import yarl

from adapters import core_fsi_wire as wire
from adapters import core_tls
from gateway.domain.core import Cancellation, Cancelled, PersonRecord, Posted, Posting, Reversal, Reversed
from gateway.domain.errors import CoreRejected, CoreTimeout, CoreUnavailable
from gateway.domain.money import fen_to_wire
from gateway.domain.reconcile import CoreRecord

CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"
_CST = timezone(timedelta(hours=8), "CST")  # FSI inf_time is Beijing time
_T = TypeVar("_T")
log = logging.getLogger("onecard.core")


class _BadReply(Exception):
    """The core answered, but not with a usable reply."""


async def _on_headers_sent(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    ctx.trace_request_ctx.sent = True


class FsiCore:
    """`gateway.ports.InsuranceCore` over HTTP; owns a pooled keep-alive session, created on first use."""

    def __init__(
        self,
        base_url: str,
        *,
        pool_size: int = 100,
        connect_timeout: float = 0.5,
        keepalive_timeout: float = 30.0,
        sender_code: str = "000000000000",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._url = yarl.URL(base_url.rstrip("/") + CALL_SERVICE)  # parsed once, not per call
        self._tls = self._url.scheme == "https"
        if self._tls and ssl_context is None:
            ssl_context = core_tls.client_context(None, None, None)  # the system store, hostname verified
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        # Shorter than the server's keep-alive, so a pooled connection is rarely closed under us.
        self._keepalive_timeout = keepalive_timeout
        self._sender_code = sender_code  # fixmedins_code of 1101 reads, which carry no institution
        self._seq = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # inside the running loop, on first use
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            connector = aiohttp.TCPConnector(
                limit=self._pool_size,
                limit_per_host=self._pool_size,
                keepalive_timeout=self._keepalive_timeout,
                ssl=self._ssl,
            )
            # The core sets no cookies: a dummy jar skips cookie filtering on every call.
            self._session = aiohttp.ClientSession(
                connector=connector, trace_configs=[trace], cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def close(self) -> None:
        """Release connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _read_msgid(self) -> str:
        return f"{self._sender_code}{_now():%Y%m%d%H%M%S}{next(self._seq) % 10000:04d}"

    async def person(self, psn_no: str, *, timeout: float) -> PersonRecord:
        """Current state of a person (1101). Raises CoreUnavailable, CoreRejected."""
        data = {"psn_no": psn_no}
        return await self._call(
            "1101", self._read_msgid(), self._sender_code, data, wire.person, seconds=timeout, write=False
        )

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        """Post a settlement (2207); a retry of the same msgid gets the first receipt.

        Raises CoreUnavailable, CoreTimeout, CoreRejected.
        """
        data = {
            "psn_no": posting.psn_no,
            "infno": posting.infno,
            "medfee_sumamt": fen_to_wire(posting.medfee_sumamt),
            "inscp_scp_amt": fen_to_wire(posting.inscp_scp_amt),
            "fund_pay_sumamt": fen_to_wire(posting.fund_pay_sumamt),
            "acct_pay": fen_to_wire(posting.acct_pay),
            "psn_cash_pay": fen_to_wire(posting.psn_cash_pay),
            "expected_version": posting.expected_version,
            "setl_time": posting.setl_time,
        }
        return await self._call(
            "2207", posting.msgid, posting.fixmedins_code, data, wire.posted, seconds=timeout, write=True
        )

    async def cancel_settlement(self, cancel: Cancellation, *, timeout: float) -> Cancelled:
        """Cancel a posted settlement (2208). Raises CoreUnavailable, CoreTimeout, CoreRejected."""
        data = {
            "setl_id": cancel.setl_id,
            "psn_no": cancel.psn_no,
            "fixmedins_code": cancel.fixmedins_code,
            "infno": cancel.infno,
        }
        return await self._call(
            "2208", cancel.msgid, cancel.fixmedins_code, data, wire.cancelled, seconds=timeout, write=True
        )

    async def reverse(self, reversal: Reversal, *, timeout: float) -> Reversed:
        """Undo `omsgid` (2601) whether or not the core had it; idempotent.

        Raises CoreUnavailable, CoreTimeout, CoreRejected.
        """
        data = {"psn_no": reversal.psn_no, "omsgid": reversal.omsgid, "oinfno": reversal.oinfno}
        return await self._call(
            "2601", reversal.msgid, reversal.fixmedins_code, data, wire.reversal, seconds=timeout, write=True
        )

    async def settlements(self, fixmedins_code: str, begin: date, end: date, *, timeout: float) -> list[CoreRecord]:
        """The core's settlements of one institution on local dates begin..end, in their current states (3202).

        Sent as infno 3202 with `stmt_begndate`/`stmt_enddate`, the FSI's 医药机构费用结算对明细账 (detail
        reconciliation) between an institution and the core. In the FSI the institution uploads its details as a
        9101 file and downloads the core's result with 9102; here the core answers the download side in one JSON
        reply, `output.details[]`: `medins_setl_id` (the msgid, as the 2207 reply names it), `setl_id`,
        `fixmedins_code`, `setl_time`, `setl_stas` (POSTED, CANCELLED or REVERSED) and the amounts in yuan.

        Raises CoreUnavailable, CoreRejected.
        """
        data = {"stmt_begndate": begin.isoformat(), "stmt_enddate": end.isoformat()}
        return await self._call(
            "3202", self._read_msgid(), fixmedins_code, data, wire.statement, seconds=timeout, write=False
        )

    async def _call(
        self,
        infno: str,
        msgid: str,
        fixmedins_code: str,
        data: dict[str, Any],
        parse: Callable[[wire.Output], _T],
        *,
        seconds: float,
        write: bool,
    ) -> _T:
        """One callService exchange; `parse` turns the `output` of an infcode-0 reply into the result."""
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "fixmedins_code": fixmedins_code,
            "inf_time": f"{_now():%Y-%m-%d %H:%M:%S}",
            "input": {"data": data},
        }
        sent = SimpleNamespace(sent=False)
        limits = aiohttp.ClientTimeout(total=seconds, sock_connect=min(self._connect_timeout, seconds))
        async with self._mapped(infno, write=write, sent=sent):
            async with self._client().post(
                self._url,
                data=orjson.dumps(envelope),
                headers={"Content-Type": "application/json"},
                timeout=limits,
                trace_request_ctx=sent,
            ) as resp:
                if resp.status == 503:  # the core's front door refuses before acting
                    raise CoreUnavailable(f"core {infno}: service unavailable (HTTP 503)")
                body = await resp.read()
            if resp.status != 200:
                raise _BadReply(f"HTTP {resp.status}")
            reply = orjson.loads(body)
            if not isinstance(reply, dict):
                raise _BadReply("reply is not an object")
            infcode = reply.get("infcode")
            if infcode == -2:
                code = reply.get("err_code")
                reason = code if isinstance(code, str) and code else "CORE_REJECTED"
                # The core's free text may name the person: carry its reason code only.
                raise CoreRejected(reason, f"core refused {infno}: {reason}")
            if infcode == -1:
                raise _BadReply(f"system error {reply.get('err_code')}")
            output = reply.get("output")
            if infcode != 0 or not isinstance(output, dict):
                raise _BadReply("unexpected infcode or output")
            return parse(output)

    @asynccontextmanager
    async def _mapped(self, infno: str, *, write: bool, sent: SimpleNamespace) -> AsyncIterator[None]:
        """The one place that turns transport and protocol failures into the port's errors."""
        try:
            yield
        except (CoreRejected, CoreUnavailable, CoreTimeout):
            raise
        except (
            aiohttp.ClientError,
            TimeoutError,
            _BadReply,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
        ) as exc:
            # ValueError covers unparseable JSON and bad amounts; Key/Index/TypeError a malformed output.
            what = str(exc) if isinstance(exc, _BadReply) else type(exc).__name__  # text may echo data
            tls = core_tls.describe(exc) if self._tls else None
            if tls is not None:  # always while connecting: nothing was sent
                log.warning("core %s: not reached (%s)", infno, tls)
                raise CoreUnavailable(f"core {infno}: not reached ({tls})") from exc
            if not sent.sent or isinstance(exc, aiohttp.ClientConnectorError):
                raise CoreUnavailable(f"core {infno}: not reached ({what})") from exc
            if write:
                raise CoreTimeout(f"core {infno}: outcome unknown ({what})") from exc
            raise CoreUnavailable(f"core {infno}: no usable answer ({what})") from exc


def _now() -> datetime:
    return datetime.now(_CST)
