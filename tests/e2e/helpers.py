"""Helpers of the end-to-end suite: core-simulator and PostgreSQL state readers, an independent settlement
calculator (SPEC §9, from the catalogue and policy parameters, never from the gateway's rules code), the SPEC
§6.3 identities and small request-mutation tools."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import aiohttp
import asyncpg
import orjson

from gateway.domain.sealed import REQUEST, RESPONSE, dev_ring, open_sealed, row_ad
from loadtest.terminal import CALL_SERVICE, SHANGHAI, Built, SimCard, Terminal
from rules.params import PinCaps, Policy
from rules.policy import PolicyBook
from tests.conftest import TODAY, Fleet

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
D = Decimal


# -- money -------------------------------------------------------------------------------------------


def fen(value: Any) -> int:
    """A wire amount (yuan number or string) as exact fen; fails on more than two decimals."""
    dec = D(str(value)) * 100
    assert dec == dec.to_integral_value(), f"{value!r} has more than two decimals"
    return int(dec)


def half_up(value: Decimal) -> int:
    """Round a non-negative fen amount half-up."""
    return int(value.quantize(D(1), rounding=ROUND_HALF_UP))


def assert_identities(setlinfo: dict[str, Any]) -> None:
    """SPEC §6.3: medfee = fulamt + overlmt + preselfpay + inscp; psn_part = medfee − fund − hosp = acct + cash."""
    v = {k: D(str(setlinfo[k])) for k in (
        "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
        "fund_pay_sumamt", "hosp_part_amt", "psn_part_amt", "acct_pay", "psn_cash_pay", "act_pay_dedc",
        "hifp_pay",
    )}  # fmt: skip
    for k, x in v.items():
        assert x >= 0, f"{k} is negative: {x}"
        assert x == x.quantize(D("0.01")), f"{k} has more than two decimals: {x}"
    parts = v["fulamt_ownpay_amt"] + v["overlmt_selfpay"] + v["preselfpay_amt"] + v["inscp_scp_amt"]
    assert v["medfee_sumamt"] == parts, f"medfee_sumamt {v['medfee_sumamt']} != parts {parts}"
    assert v["psn_part_amt"] == v["medfee_sumamt"] - v["fund_pay_sumamt"] - v["hosp_part_amt"], setlinfo
    assert v["psn_part_amt"] == v["acct_pay"] + v["psn_cash_pay"], setlinfo
    assert v["act_pay_dedc"] <= v["inscp_scp_amt"], setlinfo


# -- reference data ------------------------------------------------------------------------------------


def policy_book() -> PolicyBook:
    """The shipped policy book (rules/data/policy.toml), read as the gateway reads it."""
    return PolicyBook.from_toml((resources.files("rules") / "data" / "policy.toml").read_text("utf-8"))


def pin_caps(card_sn: str) -> PinCaps:
    """Default-PIN caps of the card's region (SPEC §7)."""
    return policy_book().pin_caps(card_sn[:6])


def institution(world: dict[str, Any], t: Terminal) -> dict[str, Any]:
    """The world's institution of a terminal."""
    return next(i for i in world["institutions"] if i["fixmedins_code"] == t.fixmedins_code)


def catalogue(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The world's catalogue by code."""
    return {i["med_list_codg"]: i for i in world["catalogue"]}


def plain_items(world: dict[str, Any], cls: str, n: int = 1, *, min_price: str = "0") -> list[dict[str, Any]]:
    """`n` catalogue items of a class without price cap or B-share override."""
    out = [
        i for i in world["catalogue"]
        if i["class"] == cls and not i.get("price_cap") and not i.get("b_selfpay") and D(i["price"]) >= D(min_price)
    ]  # fmt: skip
    assert len(out) >= n, f"catalogue has fewer than {n} plain {cls} items"
    return out[:n]


def line(item: dict[str, Any], cnt: int | str = 1) -> tuple[str, str, str]:
    """A fee line for Terminal.settle at the catalogue price."""
    return (item["med_list_codg"], str(cnt), item["price"])


def c_bill(world: dict[str, Any], at_least_fen: int) -> list[tuple[str, str, str]]:
    """Class-C lines (self-paid in full: no fund share) worth at least `at_least_fen`."""
    item = plain_items(world, "C", 1, min_price="100")[0]
    cnt = -(-at_least_fen // fen(item["price"]))
    return [line(item, cnt)]


def bill_total(items: list[tuple[str, str, str]]) -> int:
    """Sum of the lines in fen."""
    return sum(half_up(D(cnt) * D(pric) * 100) for _, cnt, pric in items)


@dataclass(frozen=True)
class Expected:
    """An independently computed split (fen)."""

    medfee: int
    full: int
    over: int
    pre: int
    inscp: int
    dedc: int
    fund: int
    psn_part: int
    acct: int
    cash: int
    capped: bool


def _ratio(r: tuple[int, int]) -> Decimal:
    return D(r[0]) / D(r[1])


def expected_split(
    world: dict[str, Any],
    t: Terminal,
    person: dict[str, Any],
    items: list[tuple[str, str, str]],
    *,
    med_type: str,
    acct_limit: int | None = None,
) -> Expected:
    """SPEC §9 computed here from catalogue entries, the policy parameters and the core's person state.

    `person` is the simulator's /sim/persons view read before the call; acct_limit None = balance only.
    """
    inst = institution(world, t)
    policy: Policy = policy_book().select(
        inst["region"],
        datetime.now(SHANGHAI).date(),
        person["insutype"],
        person["psn_type"],
        med_type,
        int(inst["level"]),
    )
    cat = catalogue(world)
    full = over = pre = inscp = 0
    for code, cnt, pric in items:
        entry = cat[code]
        amt = half_up(D(cnt) * D(pric) * 100)
        if entry["class"] == "C":
            full += amt
            continue
        o = 0
        if entry.get("price_cap"):
            o = max(0, amt - half_up(D(entry["price_cap"]) * 100 * D(cnt)))
        rest = amt - o
        p = 0
        if entry["class"] == "B":
            share = D(entry["b_selfpay"]) if entry.get("b_selfpay") else _ratio(policy.b_selfpay)
            p = half_up(D(rest) * share)
        over += o
        pre += p
        inscp += rest - p
    medfee = full + over + pre + inscp
    y = fen(person["inscp_ytd"])
    ded = policy.deductible
    if policy.deductible_scope == "visit":
        dedc = min(ded, inscp)
        low = y + dedc
    else:
        dedc = min(max(ded - y, 0), inscp)
        low = max(ded, y)
    high = y + inscp
    raw = D(0)
    lower = 0
    for upper, ratio in policy.bands:
        top = high if upper is None else min(high, upper)
        overlap = top - max(low, lower)
        if overlap > 0:
            raw += overlap * _ratio(ratio)
        if upper is None:
            break
        lower = upper
    fund = min(half_up(raw), max(0, policy.annual_cap - fen(person["fund_paid_ytd"])))
    psn_part = medfee - fund
    room = min(fen(person["balance"]), psn_part)
    acct = room if acct_limit is None else min(room, acct_limit)
    return Expected(medfee, full, over, pre, inscp, dedc, fund, psn_part, acct, psn_part - acct, acct < room)


def assert_split(setlinfo: dict[str, Any], exp: Expected) -> None:
    """The response's setlinfo equals the independent computation."""
    got = {
        "medfee": fen(setlinfo["medfee_sumamt"]), "full": fen(setlinfo["fulamt_ownpay_amt"]),
        "over": fen(setlinfo["overlmt_selfpay"]), "pre": fen(setlinfo["preselfpay_amt"]),
        "inscp": fen(setlinfo["inscp_scp_amt"]), "dedc": fen(setlinfo["act_pay_dedc"]),
        "fund": fen(setlinfo["fund_pay_sumamt"]), "psn_part": fen(setlinfo["psn_part_amt"]),
        "acct": fen(setlinfo["acct_pay"]), "cash": fen(setlinfo["psn_cash_pay"]),
    }  # fmt: skip
    want = {k: getattr(exp, k) for k in got}
    assert got == want


# -- state readers -------------------------------------------------------------------------------------


async def core_person(core_url: str, psn_no: str) -> dict[str, Any]:
    """GET /sim/persons/{psn_no}."""
    async with aiohttp.ClientSession() as s, s.get(f"{core_url}/sim/persons/{psn_no}") as r:
        assert r.status == 200, await r.text()
        return orjson.loads(await r.read())


def money_state(p: dict[str, Any]) -> dict[str, int]:
    """Balance and accumulators (fen) and version of a /sim/persons view."""
    return {
        "balance": fen(p["balance"]), "inscp_ytd": fen(p["inscp_ytd"]),
        "fund_paid_ytd": fen(p["fund_paid_ytd"]), "version": int(p["version"]),
    }  # fmt: skip


async def core_ledger(core_url: str) -> dict[str, Any]:
    """GET /sim/settlements."""
    async with aiohttp.ClientSession() as s, s.get(f"{core_url}/sim/settlements") as r:
        assert r.status == 200
        return orjson.loads(await r.read())


async def core_settlements(core_url: str, msgid: str) -> list[dict[str, Any]]:
    """The core's settlements posted under msgid."""
    return [s for s in (await core_ledger(core_url))["settlements"] if s["msgid"] == msgid]


async def put_faults(core_url: str, faults: dict[str, Any]) -> None:
    """PUT /sim/faults."""
    async with aiohttp.ClientSession() as s, s.put(f"{core_url}/sim/faults", data=orjson.dumps(faults)) as r:
        assert r.status == 200, await r.text()


@asynccontextmanager
async def pg(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A PostgreSQL connection to the session's database."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def pg_rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    async with pg(dsn) as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def settlement_rows(dsn: str, code: str, msgid: str) -> list[dict[str, Any]]:
    """settlements rows of (fixmedins_code, msgid)."""
    return await pg_rows(dsn, "SELECT * FROM settlements WHERE fixmedins_code = $1 AND msgid = $2", code, msgid)


async def journal_rows(dsn: str, code: str, msgid: str) -> list[dict[str, Any]]:
    """journal rows of (fixmedins_code, msgid); sealed bodies opened with the development data key into
    `request` (text) and `response` (bytes), as a clear row has them."""
    rows = await pg_rows(dsn, "SELECT * FROM journal WHERE fixmedins_code = $1 AND msgid = $2", code, msgid)
    return [open_row(r) for r in rows]


def open_row(r: dict[str, Any]) -> dict[str, Any]:
    """A journal row with its sealed bodies (if any) opened with the development data key."""
    if r.get("request_enc") is None:
        return r
    keys = dev_ring()
    code, msgid = r["fixmedins_code"], r["msgid"]
    out = dict(r)
    out["request"] = open_sealed(keys.cipher, bytes(r["request_enc"]), row_ad(REQUEST, code, msgid)).decode()
    if r["response_enc"] is not None:
        out["response"] = open_sealed(keys.cipher, bytes(r["response_enc"]), row_ad(RESPONSE, code, msgid))
    return out


# -- requests ------------------------------------------------------------------------------------------


async def post_raw(fleet: Fleet, body: bytes) -> tuple[int, bytes]:
    """POST raw bytes to callService; (status, body bytes)."""
    resp = await fleet.client.post(CALL_SERVICE, data=body)
    return resp.status, await resp.read()


def assert_declined(status: int, resp: dict[str, Any], code: str, http: int = 200, *, infcode: int = -2) -> None:
    """An envelope refusing with `code` (SPEC §5 table)."""
    assert resp.get("err_code") == code, resp
    assert status == http, (status, resp)
    assert resp["infcode"] == infcode, resp
    assert isinstance(resp.get("err_msg"), str), resp
    assert resp["err_msg"], resp
    assert len(resp["inf_refmsgid"]) == 30, resp


def assert_ok(status: int, resp: dict[str, Any]) -> None:
    """infcode 0, HTTP 200."""
    assert status == 200, (status, resp)
    assert resp["infcode"] == 0, resp
    assert resp["err_code"] is None, resp
    assert resp["err_msg"] is None, resp


def no_mac2(resp: dict[str, Any]) -> bool:
    """True when the response carries no MAC2 (the request MAC did not verify)."""
    return not (resp.get("dev_safe_info") or {}).get("mac2")


def mutated(built: Built, fn: Callable[[dict[str, Any]], None]) -> bytes:
    """The request body after `fn` changed a deep copy of it, serialized."""
    body = copy.deepcopy(built.body)
    fn(body)
    return orjson.dumps(body)


def flip_hex(h: str) -> str:
    """The same hex string with its first digit changed."""
    return ("0" if h[0] != "0" else "1") + h[1:]


def shanghai_today() -> date:
    """Today in the gateway's zone."""
    return datetime.now(SHANGHAI).date()


async def own_terminal(fleet: Fleet, kind: str, index: int, psam_index: int, *, sign_in: bool = True) -> Terminal:
    """A terminal on the psam_index-th ACTIVE PSAM of an institution (kept in fleet.terminals for tseq)."""
    return await fleet.terminal(kind, index, psam_index, sign_in=sign_in)


def pick_card(fleet: Fleet, pred: Callable[[dict[str, Any], dict[str, Any]], bool]) -> tuple[SimCard, dict[str, Any]]:
    """An unused, unexpired card (any status) whose (card, person) satisfy `pred`."""
    for c in fleet.world["cards"]:
        if c["card_sn"] in fleet.used or date.fromisoformat(c["valid_until"]) < TODAY:
            continue
        p = fleet.persons[c["psn_no"]]
        if pred(c, p):
            fleet.used.add(c["card_sn"])
            return fleet.cards.setdefault(c["card_sn"], SimCard.from_world(c)), p
    raise LookupError("no unused card matches")
