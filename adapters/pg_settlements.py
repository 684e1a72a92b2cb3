"""Settlements and default-PIN reservations in PostgreSQL, implementing `gateway.ports.settlements.Settlements`."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from adapters.pg_effects import apply_effects
from adapters.pg_errors import map_unavailable
from adapters.pg_pool import Pg
from gateway.domain.effects import ReleaseDefaultPin
from gateway.domain.registry import Settlement, SettlementState

_SETTLEMENT_COLS = (
    "fixmedins_code, msgid, setl_id, infno, psn_no, card_sn, state, pin, default_pin, medfee_sumamt,"
    " inscp_scp_amt, fund_pay_sumamt, acct_pay, psn_cash_pay, setl_time, cancel_msgid, cancel_setl_id"
)


def _settlement(r: asyncpg.Record) -> Settlement:
    row = dict(r)
    row["state"] = SettlementState(row["state"])
    return Settlement(**row)


async def settlements_between(
    pool: Pg | asyncpg.Pool, fixmedins_code: str, begin: datetime, end: datetime
) -> list[Settlement]:
    """Settlements of an institution with setl_time in [begin, end), the rows 3201/3202 count."""
    rows = await pool.fetch(
        f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1"
        " AND setl_time >= $2 AND setl_time < $3 ORDER BY setl_time, msgid",
        fixmedins_code,
        begin,
        end,
    )
    return [_settlement(r) for r in rows]


@map_unavailable
class PgSettlements:
    """Settlements as journaled, their state changes, and the default-PIN counters."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def settlement_by_setl_id(self, setl_id: str) -> Settlement | None:
        """A settlement by the core's setl_id."""
        r = await self.pool.fetchrow(f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE setl_id = $1", setl_id)
        return None if r is None else _settlement(r)

    async def settlement_by_msgid(self, fixmedins_code: str, msgid: str) -> Settlement | None:
        """A settlement by the institution's msgid."""
        r = await self.pool.fetchrow(
            f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1 AND msgid = $2",
            fixmedins_code,
            msgid,
        )
        return None if r is None else _settlement(r)

    async def settlement_by_cancel_msgid(self, fixmedins_code: str, cancel_msgid: str) -> Settlement | None:
        """The settlement a cancel message cancelled."""
        r = await self.pool.fetchrow(
            f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1 AND cancel_msgid = $2",
            fixmedins_code,
            cancel_msgid,
        )
        return None if r is None else _settlement(r)

    async def transition(self, fixmedins_code: str, msgid: str, from_state: str, to_state: str) -> bool:
        """Compare-and-set a settlement's state; False when it was not in `from_state`."""
        done = await self.pool.fetchval(
            "UPDATE settlements SET state = $4 WHERE fixmedins_code = $1 AND msgid = $2 AND state = $3 RETURNING true",
            fixmedins_code,
            msgid,
            from_state,
            to_state,
        )
        return bool(done)

    async def reserve_default_pin(self, card_sn: str, day: date, acct: int, per_day: int, per_day_count: int) -> bool:
        """Atomically count one default-PIN settlement and its account debit, within the day's caps."""
        ok = await self.pool.fetchval(
            "INSERT INTO default_pin_usage AS u (card_sn, day, count, acct_sum) VALUES ($1, $2, 1, $3)"
            " ON CONFLICT (card_sn, day) DO UPDATE SET count = u.count + 1, acct_sum = u.acct_sum + $3"
            " WHERE u.count < $5 AND u.acct_sum + $3 <= $4 RETURNING true",
            card_sn,
            day,
            acct,
            per_day,
            per_day_count,
        )
        return bool(ok)

    async def release_default_pin(self, card_sn: str, day: date, acct: int) -> None:
        """Give back one default-PIN reservation at once (a retried posting re-reserves)."""
        await apply_effects(self.pool, [ReleaseDefaultPin(card_sn, day, acct)])

    async def settlements_between(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        """Settlements of an institution with setl_time in [begin, end)."""
        return await settlements_between(self.pool, fixmedins_code, begin, end)
