"""Smoke tests of the load tester as QA runs it: `onecard loadtest` (closed and open models, bad options) and the
locustfile (one process, and `--processes 2` sharing the world without sharing a card or a PSAM), each against a
stack of real processes it starts, with the post-run check. Small and short: these prove it works, not how fast."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from loadtest.stack import Stack, start_stack
from loadtest.world import generate, write_world
from tests.ports import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--duration", "3", "--warmup", "1", "--persons", "400"]


def loadtest(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `onecard loadtest` with its output and work folders under tmp_path."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "onecard", "loadtest", *args, "--out", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )
    return done, out


def result_of(done: subprocess.CompletedProcess[str], out: Path) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    check = result["check"]
    assert check["ok"] is True, check
    assert check["requests"] > 0
    assert check["settlements"] > 0
    assert "check: ok" in done.stdout
    return result


def test_closed_model_writes_result_and_plot(tmp_path: Path):
    done, out = loadtest(tmp_path, *TINY, "--concurrency", "6")
    result = result_of(done, out)
    assert result["schema"] == "onecard-loadtest-result/1"
    for kind in ("whole", "gateway"):
        lat = result["latency_ms"][kind]
        assert lat["count"] > 0
        assert all(lat[p] is not None for p in ("p50", "p90", "p99", "p99_9"))
        assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"]
    assert result["count"] > 0
    assert result["outcomes"]["OK"] > 0
    assert result["unexpected"]["count"] == 0, result["unexpected"]
    assert result["mac2"]["failures"] == 0
    assert result["mac2"]["checked"] > 0
    assert {"outpatient_settle", "pharmacy_settle", "forged_mac"} <= result["scenarios"].keys()
    assert all(s["count"] > 0 and "latency_ms" in s for s in result["scenarios"].values())
    rows = result["timeseries"]
    assert rows
    assert rows[0]["second"] == 0
    assert {"sent", "ok", "errors", "warmup", "measured", "whole_p99_ms"} <= rows[0].keys()
    assert result["meta"]["model"] == "closed"
    assert result["meta"]["concurrency"] == 6
    assert (out / "plot.png").read_bytes().startswith(PNG)


def test_outpatient_visit_mix(tmp_path: Path):
    """`--mix outpatient`: 2201 → 2204 → 2206 → 2207 by reference, each visit's batch settled once."""
    done, out = loadtest(tmp_path, "--duration", "2", "--warmup", "0", "--persons", "400", "--mix", "outpatient")
    result = result_of(done, out)
    assert result["check"]["visits"] > 0
    assert result["unexpected"]["count"] == 0, result["unexpected"]
    assert set(result["scenarios"]) == {"outpatient_visit"}
    assert "visits" in done.stdout


def test_inpatient_stay_mix(tmp_path: Path):
    """`--mix inpatient`: 2401 → 2301 → 2402 → 2303 → 2304, each stay with one live final settlement."""
    done, out = loadtest(tmp_path, "--duration", "2", "--warmup", "0", "--persons", "400", "--mix", "inpatient")
    result = result_of(done, out)
    assert result["check"]["stays"] > 0
    assert result["unexpected"]["count"] == 0, result["unexpected"]
    assert set(result["scenarios"]) == {"inpatient_stay"}
    assert "stays" in done.stdout


def test_open_model_at_a_rate(tmp_path: Path):
    done, out = loadtest(tmp_path, *TINY, "--model", "open", "--rate", "40")
    result = result_of(done, out)
    assert result["outcomes"].get("OK", 0) > 0
    assert result["meta"]["model"] == "open"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "open"], "exactly one of --rate, --ramp, --steps"),
        (["--mix", "nosuch=1"], "unknown scenario 'nosuch'"),
        (["--rate", "50"], "belong to the open model"),
        (["--target", "http://127.0.0.1:9", "--world", "/nonexistent/world.json"], "No such file"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str):
    done, out = loadtest(tmp_path, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_an_unreachable_target_is_one_line_and_exit_3(tmp_path: Path):
    world = write_world(generate(persons=30, seed=3), tmp_path / "world")
    done, out = loadtest(tmp_path, "--target", f"http://127.0.0.1:{free_port()}", "--world", str(world))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Cannot connect" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


# the locustfile ---------------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def started(tmp_path: Path, seed: int) -> AsyncIterator[tuple[Stack, Path]]:
    """A small world and a stack (core simulator + `onecard serve`) on a fresh database, stopped afterwards."""
    world = write_world(generate(persons=400, seed=seed), tmp_path / "world")
    work = tmp_path / "work"
    work.mkdir()
    async with AsyncExitStack() as exits:
        yield await start_stack(exits, world, work), world


async def locust(tmp_path: Path, stack: Stack, world: Path, *args: str) -> tuple[int, str, Path]:
    """Run the locustfile headless for 6 s against the stack, with the post-run check; (exit code, output, prefix
    of the CSV files)."""
    prefix = tmp_path / "locust"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        *("-u", "5", "-r", "5", "-t", "6s"),
        *("--host", stack.gateway_url, "--world", str(world)),
        *("--pg-dsn", stack.pg_dsn, "--core-url", stack.core_url),
        *("--csv", str(prefix), "--only-summary"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), prefix


def assert_clean(code: int, out: str, prefix: Path) -> list[dict[str, str]]:
    """Exit 0, requests in every scenario row of the stats CSV and no failure; returns the rows."""
    assert code == 0, out
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    scenarios = [r for r in rows if r["Type"] == "POST"]
    assert scenarios, out
    assert sum(int(r["Request Count"]) for r in scenarios) > 0
    assert {r["Name"]: int(r["Failure Count"]) for r in scenarios} == {r["Name"]: 0 for r in scenarios}, out
    own = {r["Name"] for r in rows if r["Type"] == "gateway-own"}
    assert own == {r["Name"] for r in scenarios}  # the gateway's own latency, per scenario
    return rows


async def test_locustfile_one_process(tmp_path: Path):
    async with started(tmp_path, seed=41) as (stack, world):
        code, out, prefix = await locust(tmp_path, stack, world, "--fresh-core")
    rows = assert_clean(code, out, prefix)
    assert "check: ok — " in out
    assert {"outpatient_settle", "pharmacy_settle", "cancel"} <= {r["Name"] for r in rows}


async def test_locustfile_processes_share_nothing(tmp_path: Path):
    """Two worker processes sign in and send from disjoint PSAMs and cards (a shared one would be refused as a
    replay), each checks its own requests, and both merge their counters into one state file."""
    state = tmp_path / "state.json"
    async with started(tmp_path, seed=42) as (stack, world):
        code, out, prefix = await locust(tmp_path, stack, world, "--processes", "2", "--state", str(state))
    assert_clean(code, out, prefix)
    assert "worker 0 of 2: check: ok — " in out
    assert "worker 1 of 2: check: ok — " in out
    saved = json.loads(state.read_text())
    institutions = json.loads(world.read_text())["institutions"]
    active = {p["psam_no"] for i in institutions for p in i["psams"] if p["status"] == "ACTIVE"}
    assert set(saved["tseq"]) == active  # each worker's PSAMs, merged
    assert saved["atc"]


@pytest.mark.parametrize("tls", [[], ["--tls"]], ids=["plain", "mtls"])  # --tls: issue 11 items 1-2
def test_bench_gateway_prints_both_phases_and_the_ratio(tmp_path: Path, tls: list[str]):
    """`onecard bench gateway`, tiny: both phases measured, the check ran, `ratio:` is the last line; with --tls
    the gateway phase settles over HTTPS with each institution's client certificate."""
    done = subprocess.run(
        [sys.executable, "-m", "onecard", "bench", "gateway", "--duration", "2", "--warmup", "1", "--concurrency", "4",
         "--persons", "300", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), *tls],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert any(x.startswith("(pass-through) throughput") for x in lines), done.stdout
    assert any(x.startswith("(gateway) throughput") for x in lines), done.stdout
    assert any(x.startswith("check: ok") for x in lines), done.stdout
    assert sum("cpu µs/request" in x for x in lines) == 2
    assert lines[-1].startswith("ratio: ")
    assert float(lines[-1].split()[1]) > 0
    gateway = json.loads((tmp_path / "out" / "gateway.json").read_text())
    assert gateway["outcomes"].get("OK", 0) > 0
    assert gateway["check"]["ok"] is True
    assert (tmp_path / "out" / "passthrough.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if tls:
        assert any("tls=mTLS" in x for x in lines), done.stdout
        assert any(x.startswith("(gateway) https://") for x in lines), done.stdout


def test_bench_visit_tiny(tmp_path: Path):
    """`onecard bench visit` (issue 12), two visits: every step answered OK, the numbers printed; a bad option
    exits 2 naming it."""
    done = subprocess.run(
        [sys.executable, "-m", "onecard", "bench", "visit", "--visits", "2", "--lines", "1"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 visits of 1 lines, 9 requests" in done.stdout
    assert "CPU per visit" in done.stdout
    assert "2201 OK x2, 2204 OK x2, 2206 OK x2, 2207 OK x2" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "onecard", "bench", "visit", "--lines", "0"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--lines" in bad.stderr


def test_bench_stay_tiny(tmp_path: Path):
    """`onecard bench stay` (issue 12), two stays of two days: every step answered OK, the numbers printed; a bad
    option exits 2 naming it."""
    done = subprocess.run(
        [sys.executable, "-m", "onecard", "bench", "stay", "--stays", "2", "--days", "2", "--lines", "1"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 stays of 2 days x 1 lines, 13 requests" in done.stdout
    assert "CPU per stay" in done.stdout
    assert "2301 OK x4, 2303 OK x2, 2304 OK x2, 2401 OK x2, 2402 OK x2" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "onecard", "bench", "stay", "--days", "0"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--days" in bad.stderr


@pytest.mark.parametrize("command", [["bench", "gateway"], ["loadtest"]])
def test_a_missing_loadtest_extra_is_said_before_anything_runs(command: list[str]):
    """Without matplotlib (the `loadtest` extra) the commands say so in one line, exit 2, and start nothing."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; from onecard.cli import main;"
        f" sys.exit(main({[*command, '--duration', '30']!r}))"
    )
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "matplotlib is not installed (the `loadtest` extra)" in done.stderr
    assert "Traceback" not in done.stderr
    assert "started" not in done.stdout
    assert time.monotonic() - t0 < 20  # said at once, not after a 30 s run
