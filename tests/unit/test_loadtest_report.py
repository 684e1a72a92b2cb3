"""loadtest.report: nearest-rank percentiles, the measurement window, per-scenario figures, JSON and PNG output."""

from __future__ import annotations

import ast
import json
import random
import struct
import sys
from bisect import bisect_right
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from loadtest import report
from loadtest.report import Sample, percentile, plot, render_text, summarize, write_json

TOP_KEYS = {
    "schema",
    "percentile_method",
    "meta",
    "window",
    "count",
    "not_sent",
    "duration_s",
    "throughput_rps",
    "latency_ms",
    "outcomes",
    "unexpected",
    "mac2",
    "errors",
    "scenarios",
    "infnos",
    "timeseries",
}
LATENCY_KEYS = {"count", "p50", "p90", "p99", "p99_9", "max", "mean"}
SCENARIO_KEYS = {
    "count",
    "not_sent",
    "throughput_rps",
    "latency_ms",
    "outcomes",
    "unexpected",
    "mac2_failures",
    "errors",
}
ROW_KEYS = {
    "second",
    "warmup",
    "measured",
    "sent",
    "not_sent",
    "ok",
    "errors",
    "whole_p50_ms",
    "whole_p99_ms",
    "gateway_p50_ms",
    "gateway_p99_ms",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nearest_rank(values: list[float], p: str) -> float:
    """Independent reference: the smallest value v such that at least p% of the values are <= v."""
    xs = sorted(values)
    n = len(xs)
    for v in xs:
        if bisect_right(xs, v) * 100 >= Decimal(p) * n:  # how many values are <= v
            return v
    raise AssertionError("unreachable")


def sample(
    t: float,
    whole_ms: float = 5.0,
    gateway_ms: float | None = 3.0,
    scenario: str = "outpatient_settle",
    infno: str = "2207",
    outcome: str = "OK",
    expected: bool = True,
    mac2_ok: bool | None = True,
) -> Sample:
    return Sample(t, whole_ms, gateway_ms, scenario, infno, outcome, expected, mac2_ok)


def mixed_run() -> list[Sample]:
    """12 s of traffic: 2 s warm-up, 8 s window, 2 s after it; three scenarios with known outcomes."""
    out = []
    for i in range(120):
        t = i / 10
        out.append(sample(t, whole_ms=float(i % 10 + 1), gateway_ms=float(i % 10) / 2 + 0.5))
        out.append(
            sample(
                t + 0.01,
                whole_ms=2.0,
                gateway_ms=1.0,
                scenario="person_info",
                infno="1101",
                mac2_ok=None,
            )
        )
        if i % 4 == 0:
            out.append(
                sample(
                    t + 0.02,
                    whole_ms=1.0,
                    gateway_ms=0.5,
                    scenario="forged_mac",
                    outcome="MAC_INVALID",
                    mac2_ok=None,
                )
            )
    # In the window (t = 5.5): one connection error, one MAC2 failure, one unexpected err_code.
    out.append(sample(5.5, whole_ms=1000.0, gateway_ms=None, outcome="CONNECT_ERROR", expected=False, mac2_ok=None))
    out.append(sample(5.5, whole_ms=7.0, mac2_ok=False, expected=False))
    out.append(sample(5.5, scenario="forged_mac", outcome="OK", expected=False, mac2_ok=None))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 99, 100, 101, 999, 1000, 1001])
def test_percentiles_match_nearest_rank_reference(n: int) -> None:
    rng = random.Random(n)
    values = [round(rng.uniform(0.1, 50.0), 3) for _ in range(n)]
    xs = sorted(values)
    for p in ("0", "50", "90", "99", "99.9", "100"):
        assert percentile(xs, p) == nearest_rank(values, p), (n, p)
    assert percentile(xs, "100") == max(values)
    assert percentile([], "50") is None


def test_percentiles_on_known_inputs() -> None:
    values = [float(v) for v in range(1, 1001)]  # 1..1000: the k-th percentile is k*10 by nearest rank
    random.Random(1).shuffle(values)
    result = summarize(
        [sample(10 + i / 1000, whole_ms=v) for i, v in enumerate(values)], warmup_s=10, duration_s=1, meta={}
    )
    whole = result["latency_ms"]["whole"]
    assert whole["count"] == 1000
    assert whole["p50"] == nearest_rank(values, "50") == 500.0
    assert whole["p90"] == nearest_rank(values, "90") == 900.0
    assert whole["p99"] == nearest_rank(values, "99") == 990.0
    assert whole["p99_9"] == nearest_rank(values, "99.9") == 999.0
    assert whole["max"] == 1000.0
    assert whole["mean"] == sum(values) / len(values)
    assert result["percentile_method"].startswith("nearest-rank")


def test_warmup_and_tail_are_trimmed() -> None:
    samples = mixed_run()
    result = summarize(samples, warmup_s=2, duration_s=8, meta={})
    kept = [s for s in samples if 2 <= s.t < 10]
    window = result["window"]
    assert result["count"] == len(kept) == window["samples_measured"]
    assert window["samples_warmup"] == sum(1 for s in samples if s.t < 2)
    assert window["samples_after"] == sum(1 for s in samples if s.t >= 10)
    assert window["samples_total"] == len(samples)
    assert result["duration_s"] == 8
    assert result["throughput_rps"] == len(kept) / 8
    assert result["latency_ms"]["whole"]["count"] == len(kept)
    assert result["latency_ms"]["gateway"]["count"] == sum(1 for s in kept if s.gateway_ms is not None)
    assert result["latency_ms"]["whole"]["max"] == 1000.0


def test_per_scenario_and_infno_split() -> None:
    samples = mixed_run()
    result = summarize(samples, warmup_s=2, duration_s=8, meta={})
    kept = [s for s in samples if 2 <= s.t < 10]
    assert list(result["scenarios"]) == ["forged_mac", "outpatient_settle", "person_info"]
    for name, sc in result["scenarios"].items():
        mine = [s for s in kept if s.scenario == name]
        assert set(sc) == SCENARIO_KEYS
        assert sc["count"] == len(mine)
        assert sc["throughput_rps"] == len(mine) / 8
        whole = [s.whole_ms for s in mine]
        gateway = [s.gateway_ms for s in mine if s.gateway_ms is not None]
        for key, p in (("p50", "50"), ("p90", "90"), ("p99", "99"), ("p99_9", "99.9")):
            assert sc["latency_ms"]["whole"][key] == nearest_rank(whole, p)
            assert sc["latency_ms"]["gateway"][key] == nearest_rank(gateway, p)
        assert sum(sc["outcomes"].values()) == len(mine)
    settle = result["scenarios"]["outpatient_settle"]
    assert settle["outcomes"] == {"CONNECT_ERROR": 1, "OK": 81}
    assert settle["unexpected"] == 2
    assert settle["mac2_failures"] == 1
    assert settle["errors"] == 1
    assert result["scenarios"]["forged_mac"]["outcomes"] == {"MAC_INVALID": 20, "OK": 1}
    assert result["scenarios"]["person_info"]["latency_ms"]["whole"]["p99_9"] == 2.0

    assert result["outcomes"] == {"CONNECT_ERROR": 1, "MAC_INVALID": 20, "OK": 81 + 80 + 1}
    assert result["unexpected"]["count"] == 3
    assert result["unexpected"]["top"] == [  # all counts 1: ties ordered by scenario, then outcome
        {"scenario": "forged_mac", "outcome": "OK", "count": 1},
        {"scenario": "outpatient_settle", "outcome": "CONNECT_ERROR", "count": 1},
        {"scenario": "outpatient_settle", "outcome": "OK", "count": 1},
    ]
    assert result["mac2"] == {"checked": sum(1 for s in kept if s.mac2_ok is not None), "failures": 1}
    assert result["errors"] == {"count": 1, "by_kind": {"CONNECT_ERROR": 1, "HTTP_ERROR": 0}}
    assert result["not_sent"] == 0
    assert result["infnos"] == {
        "1101": {"count": 80, "throughput_rps": 10.0},
        "2207": {"count": 103, "throughput_rps": 103 / 8},
    }


def test_timeseries_covers_the_whole_run() -> None:
    samples = mixed_run()
    rows = summarize(samples, warmup_s=2, duration_s=8, meta={})["timeseries"]
    assert [r["second"] for r in rows] == list(range(12))
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [r["warmup"] for r in rows] == [True, True] + [False] * 10
    assert [r["measured"] for r in rows] == [False, False] + [True] * 8 + [False, False]
    assert sum(r["sent"] for r in rows) == len(samples)
    fifth = rows[5]
    mine = [s for s in samples if 5 <= s.t < 6]
    assert fifth["sent"] == len(mine)
    assert fifth["ok"] == sum(1 for s in mine if s.outcome == "OK")
    assert fifth["errors"] == 1
    assert fifth["whole_p99_ms"] == nearest_rank([s.whole_ms for s in mine], "99")
    assert fifth["gateway_p50_ms"] == nearest_rank([s.gateway_ms for s in mine if s.gateway_ms is not None], "50")


def test_http_status_outcomes_are_errors_and_no_terminal_is_not_sent() -> None:
    samples = [
        sample(1.2, whole_ms=4.0),
        sample(1.4, whole_ms=9.0, gateway_ms=None, outcome="HTTP_503", expected=False, mac2_ok=None),
        sample(1.5, whole_ms=2.0, gateway_ms=None, outcome="HTTP_ERROR", expected=False, mac2_ok=None),
        Sample(1.6, 0.0, None, "-", "-", "NO_TERMINAL", False, None),
        Sample(1.7, 0.0, None, "-", "-", "NO_TERMINAL", False, None),
    ]
    result = summarize(samples, warmup_s=1, duration_s=2, meta={})
    assert result["count"] == 5
    assert result["not_sent"] == 2
    assert result["throughput_rps"] == 3 / 2
    assert result["errors"] == {"count": 2, "by_kind": {"CONNECT_ERROR": 0, "HTTP_503": 1, "HTTP_ERROR": 1}}
    assert result["latency_ms"]["whole"]["count"] == 3
    assert result["latency_ms"]["whole"]["p50"] == nearest_rank([4.0, 9.0, 2.0], "50") == 4.0
    assert result["outcomes"]["NO_TERMINAL"] == 2
    assert result["unexpected"]["top"][0] == {"scenario": "-", "outcome": "NO_TERMINAL", "count": 2}
    assert result["scenarios"]["-"]["not_sent"] == 2
    assert result["scenarios"]["-"]["throughput_rps"] == 0.0
    assert result["scenarios"]["-"]["latency_ms"]["whole"]["p50"] is None
    assert result["infnos"]["-"] == {"count": 2, "throughput_rps": 0.0}
    row = result["timeseries"][1]
    assert (row["sent"], row["not_sent"], row["ok"], row["errors"]) == (3, 2, 1, 2)
    assert "2 not sent" in render_text(result)


def test_gaps_in_the_timeseries_are_zero_rows() -> None:
    rows = summarize([sample(0.5), sample(3.2)], warmup_s=0, duration_s=4, meta={})["timeseries"]
    assert [r["sent"] for r in rows] == [1, 0, 0, 1]
    assert rows[1]["whole_p50_ms"] is None


def test_empty_input_gives_none_figures() -> None:
    result = summarize([], warmup_s=5, duration_s=60, meta={"command": "x"})
    assert set(result) == TOP_KEYS
    assert result["count"] == 0
    assert result["throughput_rps"] == 0.0
    for kind in ("whole", "gateway"):
        lat = result["latency_ms"][kind]
        assert lat["count"] == 0
        assert all(lat[k] is None for k in LATENCY_KEYS - {"count"})
    assert result["scenarios"] == {}
    assert result["timeseries"] == []
    assert summarize([], warmup_s=0, duration_s=0, meta={})["throughput_rps"] is None
    assert summarize([sample(1.0)], warmup_s=5, duration_s=10, meta={})["latency_ms"]["whole"]["p99"] is None
    assert "0 requests" in render_text(result)


def test_json_round_trips_with_documented_keys(tmp_path: Path) -> None:
    meta: dict[str, Any] = {"command": ["onecard-load", "--rate", "1000"], "settings": {"rate": 1000}, "机器": "vm"}
    result = summarize(mixed_run(), warmup_s=2, duration_s=8, meta=meta)
    path = write_json(result, tmp_path / "deep" / "er" / "result.json")
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "schema"')
    loaded = json.loads(text)
    assert loaded == result
    assert set(loaded) == TOP_KEYS
    assert loaded["meta"] == meta
    assert set(loaded["window"]) == {
        "warmup_s",
        "duration_s",
        "start_s",
        "end_s",
        "samples_total",
        "samples_warmup",
        "samples_after",
        "samples_measured",
    }
    assert set(loaded["latency_ms"]) == {"whole", "gateway"}
    assert all(set(v) == LATENCY_KEYS for v in loaded["latency_ms"].values())
    assert set(loaded["unexpected"]) == {"count", "top"}
    assert set(loaded["mac2"]) == {"checked", "failures"}
    assert set(loaded["errors"]) == {"count", "by_kind"}
    text_summary = render_text(loaded)
    assert "outpatient_settle" in text_summary
    assert "p99.9" in text_summary


def test_plot_writes_png_without_touching_the_global_backend(tmp_path: Path) -> None:
    import matplotlib

    pyplot_before = "matplotlib.pyplot" in sys.modules
    backend_before = matplotlib.rcParams._get_backend_or_none()  # reading rcParams["backend"] would resolve it
    run = [*mixed_run(), Sample(3.3, 0.0, None, "-", "-", "NO_TERMINAL", False, None)]
    out = plot(run, tmp_path / "plots" / "run.png", warmup_s=2, title="2207 mix at 20/s")
    empty = plot([], tmp_path / "empty.png", warmup_s=0, title="empty")
    for path in (out, empty):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert (width, height) == (1200, 800)
    assert matplotlib.rcParams._get_backend_or_none() == backend_before
    if not pyplot_before:
        assert "matplotlib.pyplot" not in sys.modules
    imported = []
    for module in Path(report.__file__ or "").parent.glob("*.py"):  # every module of the report package
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert any(name.startswith("matplotlib") for name in imported)  # the parse did see the plotting module
    assert not [name for name in imported if "pyplot" in name or name == "pylab"]
