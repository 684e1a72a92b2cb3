"""CPU seconds used by the processes of a run (Linux /proc), so a benchmark can say where the machine's time went:
the gateway, the core simulator, PostgreSQL, Redis, the load generator itself."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, user+system CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return name, int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def _all() -> dict[int, tuple[str, int, float]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            out[int(entry.name)] = st
    return out


def _descendants(root: int, table: dict[int, tuple[str, int, float]]) -> set[int]:
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, (_n, ppid, _c) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


class CpuMeter:
    """Snapshots CPU seconds per group: single processes, process trees (by root pid), and all processes by
    command name (e.g. every `postgres` backend, `redis-server`). Processes that exit between snapshots are not
    counted."""

    def __init__(self, trees: dict[str, int], names: Mapping[str, Iterable[str]], singles: dict[str, int]) -> None:
        self.trees = trees
        self.singles = singles
        self.names = {group: tuple(n) for group, n in names.items()}
        self._before: dict[int, float] = {}

    def _groups(self) -> dict[int, tuple[str, float]]:
        table = _all()
        out: dict[int, tuple[str, float]] = {}
        for group, pid in self.singles.items():
            if pid in table:
                out[pid] = (group, table[pid][2])
        for group, root in self.trees.items():
            for pid in _descendants(root, table) if root in table else ():
                out.setdefault(pid, (group, table[pid][2]))
        for group, names in self.names.items():
            for pid, (name, _pp, cpu) in table.items():
                if pid not in out and any(name.startswith(n) for n in names):
                    out[pid] = (group, cpu)
        return out

    def start(self) -> None:
        """Take the first snapshot."""
        self._before = {pid: cpu for pid, (_g, cpu) in self._groups().items()}
        self._machine = machine_ticks()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since `start` (processes started in between count from zero), and under
        "machine busy %" how busy all CPUs were (100 = every core busy the whole time)."""
        busy0, total0 = self._machine
        busy1, total1 = machine_ticks()
        used: dict[str, float] = {}
        for pid, (group, cpu) in self._groups().items():
            used[group] = used.get(group, 0.0) + cpu - self._before.get(pid, 0.0)
        used["machine busy %"] = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
        return used


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])
