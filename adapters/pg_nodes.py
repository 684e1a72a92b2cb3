"""Node ids: each live gateway process holds one 4-digit id, leased in PostgreSQL, that every id it mints carries
(`inf_refmsgid`, sign-in numbers), so processes on any number of hosts sharing one database never mint the same.

A lease is a row of `gateway_nodes` renewed every third of `lease_s`. A process asks for the id it was given
(`ONECARD_NODE_ID`; refused while another live process holds it) or takes the highest free one. A lease not
renewed for `lease_s` is free; one held on this host by a process that no longer exists is free at once (a
worker killed and restarted gets its id back). The holder counts its lease lapsed `lease_s` after the last
renewal it *sent* (never later than the database frees it): a lapsed process stops answering terminals until
it holds an id again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from adapters.pg_pool import UNAVAILABLE, Pg
from gateway.domain.errors import ConfigError
from gateway.settings import MAX_NODE_ID

log = logging.getLogger("onecard.node")


# Take `node_id` unless a live lease holds it: renewed within $5 s, and not the token $6 of a process known dead.
_TAKE = (
    "INSERT INTO gateway_nodes AS g (node_id, holder, host, pid) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (node_id) DO UPDATE SET holder = excluded.holder, host = excluded.host, pid = excluded.pid,"
    " started_at = now(), renewed_at = now()"
    " WHERE g.renewed_at < now() - make_interval(secs => $5) OR g.holder = $6"
    " RETURNING node_id"
)


def _namespace() -> str:
    """What makes a pid mean one process: this kernel boot and this pid namespace (containers on one host each
    have their own), so a holder's pid is checked only where it means the same process."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        return f"{boot}.{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return f"unknown-{uuid.uuid4().hex}"  # never matches: a dead holder then waits for its lease to expire


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class NodeLease:
    """This process's node id (see the module docstring)."""

    def __init__(self, pg: Pg, *, wanted: int | None, lease_s: float) -> None:
        self.pg = pg
        self.wanted = wanted
        self.lease_s = lease_s
        self.host = socket.gethostname()[:200]
        self.pid = os.getpid()
        self.ns = _namespace()
        self.holder = f"{self.ns}:{self.pid}:{uuid.uuid4().hex}"
        self.node_id: int | None = None
        self._valid_until = 0.0

    @property
    def lapsed(self) -> bool:
        """True while this process holds no id it may mint with."""
        return self.node_id is None or time.monotonic() >= self._valid_until

    async def acquire(self) -> int:
        """Take the wanted id, or the highest free one.

        Raises:
            ConfigError: the wanted id is held by another live process, or every id is.
        """
        sent = time.monotonic()
        if self.wanted is not None:
            got = await self._take(self.wanted)
            if got is None:
                raise ConfigError(await self._held_message(self.wanted))
        else:
            got = None
            for _ in range(20):  # another process may take the same free id first: pick again
                candidate = await self.pg.fetchval(
                    "SELECT n FROM generate_series($1::integer, 0, -1) n WHERE NOT EXISTS (SELECT 1 FROM"
                    " gateway_nodes g WHERE g.node_id = n AND g.renewed_at >= now() - make_interval(secs => $2))"
                    " LIMIT 1",
                    MAX_NODE_ID,
                    self.lease_s,
                )
                if candidate is None:
                    raise ConfigError(f"every node id 0..{MAX_NODE_ID} is held by a live gateway process")
                got = await self._take(candidate)
                if got is not None:
                    break
            if got is None:
                raise ConfigError("could not lease a node id: too many processes starting at once, try again")
        self.node_id, self._valid_until = got, sent + self.lease_s
        log.info("node id %04d leased (host %s, pid %d)", got, self.host, self.pid)
        return got

    async def _take(self, node_id: int) -> int | None:
        held = await self.pg.fetchval("SELECT holder FROM gateway_nodes WHERE node_id = $1", node_id)
        dead = None
        if held is not None and held.startswith(self.ns + ":"):
            pid = int(held.split(":")[1])
            if pid != self.pid and not _alive(pid):
                dead = held  # a process of this host that is gone (killed, crashed): its id is free now
        got = await self.pg.fetchval(_TAKE, node_id, self.holder, self.host, self.pid, self.lease_s, dead)
        return None if got is None else int(got)

    async def _held_message(self, node_id: int) -> str:
        r = await self.pg.fetchrow(
            "SELECT host, pid, extract(epoch FROM now() - renewed_at)::float8 AS age FROM gateway_nodes"
            " WHERE node_id = $1",
            node_id,
        )
        who = f"{r['host']} pid {r['pid']}, renewed {r['age']:.0f} s ago" if r else "another process"
        return (
            f"node id {node_id} is held by a live gateway process ({who}): give each process its own"
            f" ONECARD_NODE_ID (serve --workers N takes N consecutive ids), or leave it unset to lease a free one"
        )

    async def renew(self) -> None:
        """Extend the lease; take a new id when this one was lost (lapsed, then taken over)."""
        sent = time.monotonic()
        if self.node_id is None:
            await self.acquire()
            return
        ok = await self.pg.fetchval(
            "UPDATE gateway_nodes SET renewed_at = now() WHERE node_id = $1 AND holder = $2 RETURNING true",
            self.node_id,
            self.holder,
        )
        if ok:
            self._valid_until = sent + self.lease_s
            return
        log.error("node id %04d was taken over after this process's lease lapsed: leasing again", self.node_id)
        self.node_id = None
        await self.acquire()

    async def run(self) -> None:
        """Renew every third of the lease (and measure the database clock) until cancelled."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew()
                await self.pg.measure_clock()
            except ConfigError as exc:
                log.error("node lease: %s", exc)
            except UNAVAILABLE as exc:
                log.warning("node lease renewal failed (%s); lapses in %.0f s", type(exc).__name__, self.remaining_s)

    @property
    def remaining_s(self) -> float:
        """Seconds until the lease lapses (0 when lapsed)."""
        return max(0.0, self._valid_until - time.monotonic())

    async def release(self) -> None:
        """Give the id back (clean shutdown)."""
        if self.node_id is not None:
            await self.pg.execute(
                "DELETE FROM gateway_nodes WHERE node_id = $1 AND holder = $2", self.node_id, self.holder
            )
            self.node_id = None
