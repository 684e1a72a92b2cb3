"""After a Locust test: the counters saved to the --state file, and the post-run check in a subprocess (no
asyncio under gevent)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.check_cli import dump_traces
from loadtest.fleet import Fleet
from loadtest.runner import Trace

ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_S = 300


def save_state(fleet: Fleet, path: Path) -> None:
    """Merge this process's counters into `path` (the highest wins), so workers on one machine can share a file."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"format": 1}
        mine = fleet.state()
        for key in ("atc", "tseq"):
            merged = dict(state.get(key, {}))
            for name, n in mine[key].items():
                merged[name] = max(int(merged.get(name, 0)), n)
            state[key] = merged
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)


def run_check(traces: list[Trace], opts: Any) -> tuple[bool, str]:
    """Run the check in a subprocess (no asyncio under gevent); (ok, its output). Keeps the traces file when the
    check finds problems, so it can be run again by hand."""
    folder = Path(tempfile.mkdtemp(prefix="onecard-locust-"))
    path = folder / "traces.json"
    dump_traces(traces, path)
    cmd = [sys.executable, "-m", "loadtest.check_cli", str(path), "--pg-dsn", opts.pg_dsn, "--core-url", opts.core_url]
    if opts.fresh_core:
        cmd += ["--world", str(Path(opts.world).resolve()), "--fresh-core"]
    try:
        done = subprocess.run(  # noqa: S603 - our own module, arguments built here
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"check: FAILED — no result within {CHECK_TIMEOUT_S} s; traces kept in {path}"
    text = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        path.unlink()
        folder.rmdir()
        return True, text
    return False, f"{text}\n(traces kept in {path})"
