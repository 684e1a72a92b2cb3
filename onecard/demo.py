"""`onecard demo`: real PostgreSQL and Redis (configured, local, or embedded), the core simulator and the
gateway, a seeded world and a short visible scenario (an outpatient visit by reference and a short inpatient stay
among it); then keeps serving until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import ClientSession, web
from redis.asyncio import Redis

from coresim.app import start_core_sim
from gateway.app import create_app
from gateway.settings import load_settings
from loadtest.terminal import CALL_SERVICE, Built, SimCard, Terminal
from loadtest.terminal_stays import Line
from loadtest.visit_scenario import lines_fen
from loadtest.world import generate, write_world
from onecard.localinfra import PgHandle, RedisHandle, ensure_database, ensure_postgres, ensure_redis, mask_url

DEMO_DB = "onecard_demo"
DEMO_PREFIX = "onecard-demo:"


@dataclass
class Row:
    """One line of the demo's table."""

    step: str
    infno: str
    who: str
    result: str
    amounts: str
    mac2: str
    gw_us: str


def _mask(card_sn: str) -> str:
    return f"{card_sn[:6]}…{card_sn[-4:]}"


async def _fresh_database(pg: PgHandle) -> str:
    """A clean demo database on that server (dropped and re-created), else the DSN itself."""
    try:
        conn = await asyncpg.connect(pg.dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
        finally:
            await conn.close()
        return await ensure_database(pg.dsn, DEMO_DB)
    except (asyncpg.PostgresError, OSError) as exc:
        print(f"  (could not create database {DEMO_DB}: {type(exc).__name__}; using the configured one)")
        return pg.dsn


async def _flush_prefix(url: str) -> None:
    r = Redis.from_url(url)
    try:
        keys = [k async for k in r.scan_iter(match=DEMO_PREFIX + "*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


async def _start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            if port == 0:
                raise
            site = web.TCPSite(runner, host, 0)  # the usual port is taken: any free one will do
            await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    h, p = runner.addresses[0][:2]
    return runner, f"http://{h}:{p}"


class Scenario:
    """Drives the gateway like a hospital and a pharmacy would, recording a table row per step."""

    def __init__(self, http: ClientSession, url: str, world: dict[str, Any]) -> None:
        self.http = http
        self.url = url + CALL_SERVICE
        self.world = world
        self.rows: list[Row] = []
        self.persons = {p["psn_no"]: p for p in world["persons"]}

    async def send(self, step: str, built: Built, who: str, *, body: bytes | None = None) -> dict[str, Any]:
        async with self.http.post(self.url, data=body or orjson.dumps(built.body)) as resp:
            data: dict[str, Any] = orjson.loads(await resp.read())
            gw = resp.headers.get("X-Gateway-Latency-Us", "-")
        out = data.get("output") or {}
        setl = out.get("setlinfo") if isinstance(out, dict) else None
        amounts = "-"
        if setl and "fund_pay_sumamt" in setl:
            amounts = (
                f"total {setl['medfee_sumamt']:.2f} = fund {setl['fund_pay_sumamt']:.2f}"
                f" + acct {setl['acct_pay']:.2f} + cash {setl['psn_cash_pay']:.2f}"
            )
            if out.get("pin_settlement", {}).get("acct_pay_capped"):
                amounts += " (acct capped)"
        result = "0 OK" if data["infcode"] == 0 else f"{data['infcode']} {data['err_code']}"
        if data["infcode"] != 0 and data.get("err_msg"):
            result += f": {data['err_msg']}"
        mac2 = "-" if "dev_safe_info" not in data else ("ok" if built.mac2_ok(data) else "BAD")
        self.rows.append(Row(step, built.body["infno"], who, result, amounts, mac2, gw))
        return data

    def card(
        self, *, kind_pin: str, insutype: str = "310", status: str = "ACTIVE", min_balance: float = 0.0
    ) -> SimCard:
        today = time.strftime("%Y-%m-%d")
        for c in self.world["cards"]:
            p = self.persons[c["psn_no"]]
            if (
                c["status"] == status
                and c["pin_mode"] == kind_pin
                and p["insutype"] == insutype
                and p["status"] == "ACTIVE"
                and float(p["balance"]) >= min_balance
                and c["valid_until"] >= today
            ):
                return SimCard.from_world(c)
        raise LookupError("the demo world has no suitable card")

    async def run(self) -> bool:
        hosp = next(i for i in self.world["institutions"] if i["kind"] == "hospital")
        pharm = next(i for i in self.world["institutions"] if i["kind"] == "pharmacy")
        seed_tseq = int(time.time()) % 2**31  # rises across demo runs on a kept database
        th = Terminal(hosp["fixmedins_code"], hosp["fixmedins_name"], hosp["psams"][0]["psam_no"], tseq=seed_tseq)
        tp = Terminal(
            pharm["fixmedins_code"],
            pharm["fixmedins_name"],
            pharm["psams"][0]["psam_no"],
            tseq=seed_tseq,
            alg="SM4",
        )
        cat = {c["class"]: c for c in reversed(self.world["catalogue"])}
        a, b = cat["A"], cat["B"]
        for t, who in ((th, "hospital"), (tp, "pharmacy")):
            r = await self.send("sign in", t.sign_in(), f"{who} PSAM {t.psam_no}")
            t.sign_no = (r.get("output") or {}).get("signinoutb", {}).get("sign_no")
        pin_card = self.card(kind_pin="PIN", min_balance=200.0)
        who = f"card {_mask(pin_card.card_sn)} ({pin_card.alg})"
        await self.send("person info", th.person_info(pin_card), who)
        items = [(a["med_list_codg"], "2", a["price"]), (b["med_list_codg"], "1", b["price"])]
        await self.send("pre-settle, PIN verified", th.settle("2206", pin_card, items), who)
        settled = await self.send("settle, PIN verified", th.settle("2207", pin_card, items), who)
        dcard = self.card(kind_pin="DEFAULT", min_balance=400.0)
        big = [(a["med_list_codg"], str(max(1, int(500 / float(a["price"])) + 1)), a["price"])]
        await self.send(
            "pharmacy, default PIN",
            tp.settle("2102", dcard, big, pin="DEFAULT"),
            f"card {_mask(dcard.card_sn)} ({dcard.alg})",
        )
        bad = next(c for c in self.world["cards"] if c["status"] in ("01", "02", "04", "05", "06", "07"))
        bcard = SimCard.from_world(bad)
        await self.send(
            "blacklisted card", th.person_info(bcard), f"card {_mask(bcard.card_sn)} (reason {bad['status']})"
        )
        forged = th.person_info(pin_card)
        mac = forged.body["dev_safe_info"]["mac"]
        forged.body["dev_safe_info"]["mac"] = ("0" if mac[0] != "0" else "1") + mac[1:]
        await self.send("forged MAC", forged, who)
        setl_id = ((settled.get("output") or {}).get("setlinfo") or {}).get("setl_id", "?")
        await self.send("cancel the settlement", th.cancel("2208", setl_id, pin_card.psn_no), f"setl_id {setl_id}")
        await self._visit(th, pin_card, items, seed_tseq)
        await self._stay(th, pin_card, items, seed_tseq)
        expected = ["0", "0", "0", "0", "0", "0", "-2 CARD_BLACKLISTED", "-2 MAC_INVALID", "0", "0", "0", "0", "0"]
        expected += ["0"] * 6  # the inpatient stay
        return all(r.result.startswith(e) for r, e in zip(self.rows, expected, strict=True))

    async def _visit(self, t: Terminal, card: SimCard, items: list[tuple[str, str, str]], seq: int) -> None:
        """Issue 12: a short outpatient visit by reference (SPEC §6.6): register, upload, pre-settle, settle."""
        r = await self.send("visit: register", t.register(card, f"DEMO{seq}"), f"psn {card.psn_no[:6]}…")
        mdtrt_id = ((r.get("output") or {}).get("data") or {}).get("mdtrt_id") or "?"
        who = f"visit …{mdtrt_id[-8:]}"
        await self.send("visit: upload fees", t.upload_fees(card.psn_no, mdtrt_id, "B1", items), who)
        total = lines_fen(items)
        for step, infno in (("visit: pre-settle batch", "2206"), ("visit: settle batch", "2207")):
            await self.send(step, t.settle_by_reference(infno, card, mdtrt_id, "B1", total), who)

    async def _stay(self, t: Terminal, card: SimCard, items: list[tuple[str, str, str]], seq: int) -> None:
        """Issue 12: a short inpatient stay (SPEC §6.7): admit, two days of fees (the second refunds one unit of
        the first day's first line), discharge, pre-settle, settle."""
        r = await self.send("stay: admit", t.admit(card, f"DEMOZY{seq}"), f"psn {card.psn_no[:6]}…")
        mdtrt_id = ((r.get("output") or {}).get("result") or {}).get("mdtrt_id") or "?"
        who = f"stay …{mdtrt_id[-8:]}"
        code, _, pric = items[0]
        day2: list[Line] = [(code, "1", pric), ("000001", code, "1", pric)]  # one more, and one of day 1 back
        await self.send("stay: day 1 fees", t.upload_stay_fees(card.psn_no, mdtrt_id, list(items)), who)
        await self.send("stay: day 2 fees, a refund", t.upload_stay_fees(card.psn_no, mdtrt_id, day2, first_sn=3), who)
        await self.send("stay: discharge", t.discharge(card.psn_no, mdtrt_id), who)
        total = lines_fen(items)  # day 2's line and its refund cancel out
        for step, infno in (("stay: pre-settle", "2303"), ("stay: settle", "2304")):
            await self.send(step, t.settle_stay(infno, card, mdtrt_id, total), who)

    def table(self) -> str:
        heads = ("#", "step", "infno", "who", "result", "split (yuan)", "MAC2", "gw µs")
        rows = [
            (str(i), r.step, r.infno, r.who, r.result, r.amounts, r.mac2, r.gw_us) for i, r in enumerate(self.rows, 1)
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
        fmt = "  ".join(f"{{:{w}}}" for w in widths)
        lines = [fmt.format(*heads), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*row) for row in rows]
        return "\n".join(lines)


async def run_demo(
    workdir: Path, *, host: str, port: int, core_port: int, persons: int, once: bool, embedded: bool
) -> int:
    """Start everything, run the scenario, print the table, serve until interrupted; 0 when all went as shown."""
    workdir = await asyncio.to_thread(workdir.resolve)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    allow_local = not embedded
    pg_cfg = None if embedded else os.environ.get("ONECARD_PG_DSN")
    redis_cfg = None if embedded else os.environ.get("ONECARD_REDIS_URL")
    print(f"onecard demo: working folder {workdir}")
    pg: PgHandle | None = None
    rd: RedisHandle | None = None
    runners: list[web.AppRunner] = []
    try:
        pg = await ensure_postgres(pg_cfg, workdir, allow_local=allow_local)
        print(f"  PostgreSQL: {pg.source} ({mask_url(pg.dsn)})")
        rd = await ensure_redis(redis_cfg, workdir, allow_local=allow_local)
        print(f"  Redis:      {rd.source} ({mask_url(rd.url)})")
        dsn = await _fresh_database(pg)
        await _flush_prefix(rd.url)
        world = generate(persons=persons, seed=2026)
        world_path = write_world(world, workdir)
        core_runner, core_url = await start_core_sim(host, core_port, world)
        runners.append(core_runner)
        print(f"  core simulator: {core_url} ({len(world['persons'])} persons)")
        settings = load_settings(
            None,
            os.environ,
            pg_dsn=dsn,
            redis_url=rd.url,
            redis_prefix=DEMO_PREFIX,
            core_url=core_url,
            dev_mode=True,
            world_file=str(world_path),
        )
        gw_runner, gw_url = await _start_site(create_app(settings), host, port)
        runners.append(gw_runner)
        print(f"  gateway:        {gw_url}  (world {world_path})\n")
        async with ClientSession() as http:
            scenario = Scenario(http, gw_url, world)
            ok = await scenario.run()
        print(scenario.table())
        print(f"\nscenario {'went as expected' if ok else 'DID NOT go as expected'}")
        if once:
            return 0 if ok else 1
        print(
            f"\nserving until Ctrl-C:\n  terminals  POST {gw_url}{CALL_SERVICE}\n  metrics    {gw_url}/metrics\n"
            f"  health     {gw_url}/healthz  {gw_url}/readyz\n  core sim   {core_url}/sim/settlements\n"
            f"  world      {world_path}"
        )
        sys.stdout.flush()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return 0
    finally:
        for r in reversed(runners):
            await r.cleanup()
        if rd is not None:
            await rd.stop()
        if pg is not None:
            await pg.stop()
        logging.getLogger("onecard.demo").info("demo stopped")
