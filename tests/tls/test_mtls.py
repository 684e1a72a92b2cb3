"""Terminals over HTTPS with institution-bound client certificates (issue 11 items 1-2), on the session's
database: a settlement with mTLS, the certificate's institution from its SAN URI or its CN, a forged envelope
refused CLIENT_CERT_MISMATCH (403) with nothing journaled, bad certificates refused at the handshake, and no
HTTP answer to plain HTTP on the TLS port."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from loadtest.terminal import CALL_SERVICE, Built, Terminal
from tests.conftest import Fleet
from tests.e2e.helpers import journal_rows, pg_rows
from tests.tls.conftest import Pki


async def post(server: TestServer, ctx: ssl.SSLContext, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST callService over HTTPS on a fresh connection presenting `ctx`'s client certificate."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(str(server.make_url(CALL_SERVICE)), data=body, ssl=ctx) as r,
    ):
        return r.status, orjson.loads(await r.read())


async def signed_in(fleet: Fleet, server: TestServer, ctx: ssl.SSLContext, kind: str) -> Terminal:
    """The session fleet's first terminal of that kind, signed in over HTTPS with `ctx` if it is not yet."""
    t = await fleet.terminal(kind, sign_in=False)
    if t.sign_no is None:
        status, resp = await post(server, ctx, orjson.dumps(t.sign_in().body))
        assert (status, resp["infcode"]) == (200, 0), resp
        t.sign_no = resp["output"]["signinoutb"]["sign_no"]
    return t


def settlement(fleet: Fleet, t: Terminal, catalogue_codes: dict[str, list[dict[str, Any]]]) -> Built:
    card, _person = fleet.card(insutype="310", min_balance=10000)
    item = catalogue_codes["A"][0]
    return t.settle("2207", card, [(item["med_list_codg"], "1", item["price"])])


async def handshake(server: TestServer, ctx: ssl.SSLContext) -> None:
    """A TLS handshake with the server, closed at once (the asyncio listener drops a refused handshake with a
    reset; tests/tls/test_tls_config.py shows the alerts the context itself sends)."""
    _reader, writer = await asyncio.open_connection(server.host, server.port, ssl=ctx)
    writer.close()


class TestMutualTls:
    async def test_settlement_over_mtls(
        self, fleet: Fleet, tls_server: TestServer, pki: Pki, settings, catalogue_codes
    ):
        """Institution A (named in its certificate's SAN URI) signs in and settles over HTTPS: OK, MAC2 good, one
        journal row."""
        ctx = pki.client("a")
        t = await signed_in(fleet, tls_server, ctx, "hospital")
        assert t.fixmedins_code == pki.code_a
        b = settlement(fleet, t, catalogue_codes)
        status, resp = await post(tls_server, ctx, orjson.dumps(b.body))
        assert (status, resp["infcode"]) == (200, 0), resp
        assert b.mac2_ok(resp)
        assert len(await journal_rows(settings.pg_dsn, pki.code_a, b.body["msgid"])) == 1

    async def test_institution_named_in_the_cn(self, fleet: Fleet, tls_server: TestServer, pki: Pki):
        """Institution B's certificate names it only in the subject CN: its sign-in is accepted."""
        t = await fleet.terminal("pharmacy", sign_in=False)
        status, resp = await post(tls_server, pki.client("b"), orjson.dumps(t.sign_in().body))
        assert (status, resp["infcode"]) == (200, 0), resp
        t.sign_no = resp["output"]["signinoutb"]["sign_no"]

    async def test_san_wins_over_the_cn(self, fleet: Fleet, tls_server: TestServer, pki: Pki):
        """A certificate with SAN URI of A and CN of B acts for A only."""
        ctx = pki.client("a_both")
        b = await fleet.terminal("pharmacy", sign_in=False)
        status, resp = await post(tls_server, ctx, orjson.dumps(b.sign_in().body))
        assert (status, resp["err_code"]) == (403, "CLIENT_CERT_MISMATCH"), resp
        await signed_in(fleet, tls_server, ctx, "hospital")  # A's envelope is accepted

    async def test_forged_envelope_is_refused_and_not_journaled(
        self, fleet: Fleet, tls_server: TestServer, pki: Pki, settings, catalogue_codes
    ):
        """A's valid certificate with a settlement of B: 403 CLIENT_CERT_MISMATCH, infcode -2, no MAC2, no journal
        row; nothing of B's was taken (the same request then succeeds with B's certificate)."""
        t = await signed_in(fleet, tls_server, pki.client("b"), "pharmacy")
        b = settlement(fleet, t, catalogue_codes)
        status, resp = await post(tls_server, pki.client("a"), orjson.dumps(b.body))
        assert status == 403
        assert (resp["infcode"], resp["err_code"]) == (-2, "CLIENT_CERT_MISMATCH"), resp
        assert pki.code_a in resp["err_msg"]
        assert pki.code_b in resp["err_msg"]
        assert "mac2" not in (resp.get("dev_safe_info") or {})
        assert await journal_rows(settings.pg_dsn, pki.code_b, b.body["msgid"]) == []
        status, resp = await post(tls_server, pki.client("b"), orjson.dumps(b.body))
        assert (status, resp["infcode"]) == (200, 0), resp

    async def test_mismatch_is_checked_before_the_envelope(self, tls_server: TestServer, pki: Pki):
        """An envelope naming B and nothing else valid is refused as B's impostor, not as MALFORMED; a body with no
        fixmedins_code at all is MALFORMED naming the field."""
        status, resp = await post(tls_server, pki.client("a"), orjson.dumps({"fixmedins_code": pki.code_b}))
        assert (status, resp["err_code"]) == (403, "CLIENT_CERT_MISMATCH"), resp
        status, resp = await post(tls_server, pki.client("a"), orjson.dumps({"infno": "9001"}))
        assert (status, resp["err_code"]) == (400, "MALFORMED"), resp
        assert "fixmedins_code" in resp["err_msg"]


class TestRefusedAtTheHandshake:
    @pytest.mark.parametrize("name", ["a_other_ca", "a_expired", "a_revoked", None])
    async def test_bad_client_certificate(self, tls_server: TestServer, pki: Pki, settings, name):
        """A certificate of another CA, expired, revoked in the CRL, or none: over TLS 1.2 the handshake fails;
        over TLS 1.3 the request gets no HTTP answer. Nothing is journaled."""
        before = await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM journal")
        ctx = pki.client(name)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 verifies the client after the client's Finished
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(tls_server, ctx)
        with pytest.raises(aiohttp.ClientError):
            await post(tls_server, pki.client(name), orjson.dumps({"infno": "9001"}))
        assert await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM journal") == before

    async def test_plain_http_gets_no_http_answer(self, fleet: Fleet, tls_server: TestServer, pki: Pki, settings):
        """Plain HTTP to the TLS port: no HTTP answer of any status, and a settlement body sent so is not journaled."""
        t = await fleet.terminal("hospital", sign_in=False)
        body = orjson.dumps(t.sign_in().body)
        url = f"http://{tls_server.host}:{tls_server.port}{CALL_SERVICE}"
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.post(url, data=body) as r:
                    pytest.fail(f"plain HTTP answered {r.status}")
        assert await journal_rows(settings.pg_dsn, pki.code_a, orjson.loads(body)["msgid"]) == []

    async def test_tls_below_1_2_is_refused(self, tls_server: TestServer, pki: Pki):
        """A client that offers at most TLS 1.1 gets no session."""
        ctx = pki.client("a")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # what an old client does, on purpose
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(tls_server, ctx)


async def get(server: TestServer, ctx: ssl.SSLContext, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET over HTTPS on a fresh connection presenting `ctx`'s client certificate."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(str(server.make_url(path)), headers=headers, ssl=ctx) as r,
    ):
        return r.status, await r.read()


class TestDistributionBound:
    @pytest.mark.parametrize("path", ["/blacklist/delta?since=0", "/blacklist/snapshot"])
    async def test_psam_of_another_institution_is_refused(
        self, fleet: Fleet, tls_server: TestServer, pki: Pki, path: str
    ):
        """B's signed-in PSAM polls with B's certificate: 200. The same headers with A's certificate: 403
        CLIENT_CERT_MISMATCH in the JSON error shape, naming both; an unregistered PSAM with A's certificate is
        refused the same way, before its sign-in is looked at."""
        t = await signed_in(fleet, tls_server, pki.client("b"), "pharmacy")
        assert t.sign_no is not None
        headers = {"X-Psam-No": t.psam_no, "X-Sign-No": t.sign_no}
        status, _ = await get(tls_server, pki.client("b"), path, headers)
        assert status == 200
        for psam_no in (t.psam_no, "PSAM-NOT-REGISTERED"):
            status, body = await get(tls_server, pki.client("a"), path, {**headers, "X-Psam-No": psam_no})
            err = orjson.loads(body)
            assert (status, set(err), err["err_code"]) == (403, {"err_code", "err_msg"}, "CLIENT_CERT_MISMATCH")
            assert psam_no in err["err_msg"]
            assert pki.code_a in err["err_msg"]

    async def test_own_psam_still_needs_a_sign_in(self, fleet: Fleet, tls_server: TestServer, pki: Pki):
        """A's certificate with A's PSAM but no valid sign-in: 401 NOT_SIGNED_IN, as without TLS."""
        t = await signed_in(fleet, tls_server, pki.client("a"), "hospital")
        status, body = await get(
            tls_server, pki.client("a"), "/blacklist/snapshot", {"X-Psam-No": t.psam_no, "X-Sign-No": "S" * 20}
        )
        assert (status, orjson.loads(body)["err_code"]) == (401, "NOT_SIGNED_IN")
