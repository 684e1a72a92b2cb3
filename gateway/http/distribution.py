"""Blacklist distribution to terminals (SPEC §8.2): `GET /blacklist/delta?since=V` and `GET /blacklist/snapshot`.

Both need a signed-in PSAM (`X-Psam-No`, `X-Sign-No`); with client certificates required (`tls_client_ca`), a
PSAM of the institution the certificate names (else 403 CLIENT_CERT_MISMATCH, issue 11 item 2). Both carry an
ETag; a poll whose If-None-Match still matches is answered 304 from the process's own applied version, without
touching PostgreSQL, so a fleet of terminals polling an unchanged list costs almost nothing.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.domain.codes import ResultCode
from gateway.http.client_cert import client_institution
from gateway.http.errors import json_error
from gateway.keys import DISTRIBUTION, GATEWAY, LOCAL_BLACKLIST, SETTINGS

distribution_routes = web.RouteTableDef()


def _error(status: int, code: str, message: str) -> web.Response:
    return json_error(status, message, code)


async def _signed_in(request: web.Request) -> web.Response | None:
    psam_no = request.headers.get("X-Psam-No", "")
    sign_no = request.headers.get("X-Sign-No", "")
    if not psam_no or not sign_no:
        return _error(401, "NOT_SIGNED_IN", "X-Psam-No and X-Sign-No headers are required")
    gw = request.app[GATEWAY]
    bound = client_institution(request) if request.app[SETTINGS].tls_client_ca is not None else None
    if bound is not None:  # checked first, as on the terminal route: a PSAM of another institution learns nothing
        psam = await gw.d.registry.psam(psam_no)
        if not bound or psam is None or psam.fixmedins_code != bound:
            return _mismatch(psam_no, bound)
    sess = await gw.d.registry.session(sign_no)
    if sess is None or sess.psam_no != psam_no or sess.signed_out or sess.expires_at <= gw.d.now():
        return _error(401, "NOT_SIGNED_IN", "no valid sign-in session for this PSAM: sign in with 9001")
    if bound is not None and sess.fixmedins_code != bound:  # a session opened as another institution
        return _mismatch(psam_no, bound)
    return None


def _mismatch(psam_no: str, bound: str) -> web.Response:
    code = ResultCode.CLIENT_CERT_MISMATCH.value
    if not bound:
        return _error(403, code, "the client certificate names no institution")
    return _error(403, code, f"PSAM {psam_no[:32]!r} is not of the institution of the client certificate ({bound})")


async def _version(request: web.Request) -> int:
    """The version this process can vouch for (its cache when current), else PostgreSQL's."""
    local = request.app[LOCAL_BLACKLIST]
    if local.current and local.version is not None:
        return local.version
    return await request.app[DISTRIBUTION].version()


def _not_modified(request: web.Request, etag: str) -> web.Response | None:
    tags = [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]
    if etag in tags or "*" in tags:
        return web.Response(status=304, headers={"ETag": etag})
    return None


@distribution_routes.get("/blacklist/delta")
async def delta(request: web.Request) -> web.StreamResponse:
    """Changes since a version, or the full list when the log no longer reaches back or is larger."""
    if (denied := await _signed_in(request)) is not None:
        return denied
    raw = request.query.get("since", "")
    if not raw.isdigit() or len(raw) > 18:
        return _error(400, "MALFORMED", "since: must be a non-negative integer version")
    since = int(raw)
    version = await _version(request)
    if since > version:
        return _error(400, "MALFORMED", f"since: {since} is in the future (current version {version})")
    etag = f'"bl-{since}-{version}"'
    if (nm := _not_modified(request, etag)) is not None:
        return nm
    if since == version:
        body = {"version": version, "full": False, "adds": [], "dels": []}
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"ETag": etag})
    d, version, size = await request.app[DISTRIBUTION].card_delta(since)
    etag = f'"bl-{since}-{version}"'
    if d is None or len(d.adds) + len(d.dels) > size:
        return await _snapshot_json(request, headers={"X-Blacklist-Reason": "full list: delta unavailable or larger"})
    body = {
        "version": d.version,
        "full": False,
        "adds": [{"card_sn": k, "reason": r} for k, r in d.adds],
        "dels": d.dels,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"ETag": etag})


@distribution_routes.get("/blacklist/snapshot")
async def snapshot(request: web.Request) -> web.StreamResponse:
    """The whole card list: JSON, or sorted 16-byte card_sn values with Accept: application/octet-stream."""
    if (denied := await _signed_in(request)) is not None:
        return denied
    binary = "application/octet-stream" in request.headers.get("Accept", "")
    version = await _version(request)
    etag = f'"bl-snap-{version}-{"bin" if binary else "json"}"'
    if (nm := _not_modified(request, etag)) is not None:
        return nm
    if binary:
        return await _snapshot_binary(request)
    return await _snapshot_json(request)


async def _snapshot_json(request: web.Request, headers: dict[str, str] | None = None) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json", **(headers or {})})
    async with request.app[DISTRIBUTION].card_snapshot() as (version, chunks):
        resp.headers["ETag"] = f'"bl-snap-{version}-json"'
        resp.headers["X-Blacklist-Version"] = str(version)
        await resp.prepare(request)
        await resp.write(b'{"version":%d,"full":true,"entries":[' % version)
        first = True
        async for rows in chunks:
            part = b",".join(orjson.dumps({"card_sn": k, "reason": r}) for k, r in rows)
            await resp.write(part if first else b"," + part)
            first = False
        await resp.write(b"]}")
    await resp.write_eof()
    return resp


async def _snapshot_binary(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    async with request.app[DISTRIBUTION].card_snapshot() as (version, chunks):
        resp.headers["ETag"] = f'"bl-snap-{version}-bin"'
        resp.headers["X-Blacklist-Version"] = str(version)
        await resp.prepare(request)
        async for rows in chunks:
            await resp.write(b"".join(bytes.fromhex(k) for k, _ in rows))
    await resp.write_eof()
    return resp
