"""Node ids leased in PostgreSQL (adapters/pg_nodes.py): unique among live processes, a configured id refused
while another live process holds it (naming the holder), free again once its holder is gone from this host or
its lease expired, and every inf_refmsgid carries it."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import pytest

from adapters.pg_nodes import NodeLease
from adapters.pg_pool import Pg
from gateway.domain.errors import ConfigError
from gateway.pipeline.reply import RefIds
from loadtest.terminal import SHANGHAI


@pytest.fixture(autouse=True)
async def no_leases(pool: Pg) -> None:
    await pool.execute("DELETE FROM gateway_nodes")


class TestLeases:
    async def test_processes_lease_distinct_ids_from_the_top(self, pool: Pg):
        leases = [NodeLease(pool, wanted=None, lease_s=30) for _ in range(5)]
        ids = [await lease.acquire() for lease in leases]
        assert ids == [9998, 9997, 9996, 9995, 9994]  # configured ids are small; automatic ones stay clear
        assert not any(lease.lapsed for lease in leases)

    async def test_a_configured_id_held_by_a_live_process_is_refused_naming_it(self, pool: Pg):
        first = NodeLease(pool, wanted=7, lease_s=30)
        assert await first.acquire() == 7
        with pytest.raises(ConfigError, match=r"node id 7 is held by a live gateway process \(.+ pid \d+"):
            await NodeLease(pool, wanted=7, lease_s=30).acquire()
        await first.release()
        assert await NodeLease(pool, wanted=7, lease_s=30).acquire() == 7  # given back at a clean stop

    async def test_an_expired_lease_is_free(self, pool: Pg):
        """Not renewed for lease_s: another process may take the id. The old holder, renewing, learns it lost
        it: an automatic lease takes another id; a configured one cannot, and stays lapsed (not serving)."""
        auto = NodeLease(pool, wanted=None, lease_s=30)
        taken = await auto.acquire()
        configured = NodeLease(pool, wanted=8, lease_s=30)
        await configured.acquire()
        await pool.execute("UPDATE gateway_nodes SET renewed_at = now() - interval '31 seconds'")
        assert await NodeLease(pool, wanted=taken, lease_s=30).acquire() == taken
        assert await NodeLease(pool, wanted=8, lease_s=30).acquire() == 8
        await auto.renew()
        assert auto.node_id not in (None, taken)
        assert not auto.lapsed
        with pytest.raises(ConfigError, match="node id 8 is held"):
            await configured.renew()
        assert configured.lapsed

    async def test_the_id_of_a_process_of_this_host_that_died_is_free_at_once(self, pool: Pg):
        """A worker killed with SIGKILL cannot give its id back; restarted, it must not wait out the lease."""
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await proc.wait()
        pid = proc.pid  # gone now
        ghost = NodeLease(pool, wanted=9, lease_s=30)
        await ghost.acquire()
        await pool.execute(
            "UPDATE gateway_nodes SET pid = $1, holder = $2 WHERE node_id = 9", pid, f"{ghost.ns}:{pid}:x"
        )
        assert await NodeLease(pool, wanted=9, lease_s=30).acquire() == 9

    async def test_a_lease_not_renewed_in_time_lapses(self, pool: Pg):
        lease = NodeLease(pool, wanted=None, lease_s=0.2)
        await lease.acquire()
        assert not lease.lapsed
        await asyncio.sleep(0.25)
        assert lease.lapsed  # this process stops answering terminals until it holds an id again
        await lease.renew()
        assert not lease.lapsed


class TestRefIds:
    async def test_inf_refmsgid_carries_the_node_id(self, pool: Pg):
        lease = NodeLease(pool, wanted=42, lease_s=30)
        await lease.acquire()
        ids = RefIds("330200", lease)
        now = datetime(2026, 12, 1, 9, 30, 0, tzinfo=SHANGHAI)
        a, b = ids.next(now), ids.next(now)
        assert len(a) == 30
        assert a[:20] == "33020020261201093000"
        assert a[20:24] == b[20:24] == "0042"
        assert a != b
        other = NodeLease(pool, wanted=43, lease_s=30)
        await other.acquire()
        assert RefIds("330200", other).next(now)[20:24] == "0043"  # two processes, one second: never the same
