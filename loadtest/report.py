"""The load tester's report: figures, a JSON result file, a PNG plot and a terminal summary from per-request samples.

The load tester records one :class:`Sample` per request and hands the list here::

    result = summarize(samples, warmup_s=10, duration_s=60, meta={"command": ..., "settings": ..., "machine": ...})
    write_json(result, Path("out/result.json"))
    plot(samples, Path("out/result.png"), warmup_s=10, title="2207 mix, 1,000/s offered")
    print(render_text(result))

Pure Python except :func:`plot`, which imports matplotlib lazily (the ``loadtest`` extra) and draws on a
``matplotlib.figure.Figure`` with ``FigureCanvasAgg`` directly: pyplot is never imported and the global backend
is never set, so this is safe in threads, subprocesses and next to other matplotlib users.

Measurement window
    Samples are placed by their send time ``t`` (seconds since the run started). The window is
    ``warmup_s <= t < warmup_s + duration_s``; samples before it (warm-up) and after it are dropped from every
    figure except the per-second ``timeseries``, which covers the whole run. Rates divide by ``duration_s``
    (the configured measured seconds), not by the span of the samples, so a stalled gateway shows as a low rate.

Outcomes
    ``"OK"``, an err_code, ``"CONNECT_ERROR"``, ``"HTTP_ERROR"`` or ``"HTTP_<status>"`` (the runner names a
    non-JSON answer by its status). Errors are ``CONNECT_ERROR`` and every ``HTTP_*`` outcome. ``NO_TERMINAL``
    (an arrival that found no free terminal, so nothing was sent) is *not sent*: it counts in ``count``,
    ``outcomes`` and ``unexpected`` but not in rates, latency, or the per-second ``sent``.

Percentiles
    Nearest-rank: for ``n`` sorted values ``x[1] <= ... <= x[n]``, percentile ``p`` is ``x[ceil(p/100 * n)]``
    (``x[1]`` for ``p = 0``), computed with exact fractions, so every percentile is a latency that was actually
    observed and ``max`` equals ``p100``. With no values every figure is ``None``. Latency figures cover every
    request sent in the window, errors included (a connection error's ``whole_ms`` is the time until it failed);
    gateway figures cover the samples that carry an ``X-Gateway-Latency-Us`` value.

JSON keys (``summarize`` output; every key is always present, dict keys inside are sorted)
    ``schema``               ``"onecard-loadtest-result/1"``
    ``percentile_method``    text naming the method above (starts with ``"nearest-rank"``)
    ``meta``                 the caller's ``meta`` dict, verbatim (command line, settings, machine)
    ``window``               ``{warmup_s, duration_s, start_s, end_s, samples_total, samples_warmup,
                             samples_after, samples_measured}`` -- the trimming, in seconds and sample counts
    ``count``                samples in the window
    ``not_sent``             of those, ``NO_TERMINAL`` arrivals (never sent)
    ``duration_s``           measured seconds (the ``duration_s`` argument)
    ``throughput_rps``       ``(count - not_sent) / duration_s`` (``None`` if ``duration_s <= 0``)
    ``latency_ms``           ``{"whole": L, "gateway": L}`` where
                             ``L = {count, p50, p90, p99, p99_9, max, mean}`` (ms; ``None`` when ``count`` is 0)
    ``outcomes``             ``{outcome: count}`` -- ``"OK"``, err_codes, ``"HTTP_ERROR"``, ``"CONNECT_ERROR"``
    ``unexpected``           ``{count, top}``; ``top`` lists up to 10 ``{scenario, outcome, count}``,
                             most frequent first (ties by scenario, then outcome)
    ``mac2``                 ``{checked, failures}`` -- samples with ``mac2_ok`` not ``None``, and ``False``
    ``errors``               ``{count, by_kind: {outcome: n}}`` -- ``by_kind`` always holds ``CONNECT_ERROR`` and
                             ``HTTP_ERROR`` (possibly 0) plus any ``HTTP_<status>`` seen
    ``scenarios``            ``{scenario: S}`` with ``S = {count, not_sent, throughput_rps, latency_ms, outcomes,
                             unexpected, mac2_failures, errors}`` (``unexpected`` and ``errors`` are counts here)
    ``infnos``               ``{infno: {count, throughput_rps}}`` (same rules as the top level)
    ``timeseries``           one row per second of the run, from second 0 (run start, warm-up included) to the
                             last second holding a sample, gaps filled with zero rows: ``{second, warmup,
                             measured, sent, not_sent, ok, errors, whole_p50_ms, whole_p99_ms, gateway_p50_ms,
                             gateway_p99_ms}``. ``second`` is ``floor(t)``; ``warmup`` is true when the second
                             starts before ``warmup_s``; ``measured`` is true when the second lies wholly inside
                             the window; ``sent``/``ok``/``errors`` count requests sent in that second,
                             ``not_sent`` its NO_TERMINAL arrivals; the latencies are that second's nearest-rank
                             percentiles over the requests sent in it (``None`` if none).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = [
    "ERROR_OUTCOMES",
    "NOT_SENT_OUTCOMES",
    "PERCENTILE_METHOD",
    "SCHEMA",
    "Sample",
    "is_error",
    "percentile",
    "plot",
    "render_text",
    "summarize",
    "timeseries",
    "write_json",
]

SCHEMA = "onecard-loadtest-result/1"
PERCENTILE_METHOD = (
    "nearest-rank: the ceil(p/100*n)-th smallest of n values (the smallest for p=0), exact fractions; "
    "None when there are no values"
)
ERROR_OUTCOMES = ("CONNECT_ERROR", "HTTP_ERROR")  # always listed in errors.by_kind; any HTTP_* is an error too
NOT_SENT_OUTCOMES = frozenset({"NO_TERMINAL"})
TOP_UNEXPECTED = 10
# (JSON key, percentile) pairs of the latency summary; strings keep 99.9 exact.
_PERCENTILES = (("p50", "50"), ("p90", "90"), ("p99", "99"), ("p99_9", "99.9"))


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as the load tester saw it."""

    t: float  # seconds since the run started when the request was sent
    whole_ms: float  # whole request latency seen by the client, ms
    gateway_ms: float | None  # X-Gateway-Latency-Us header / 1000, None if absent (e.g. connection error)
    scenario: str  # e.g. "outpatient_settle", "person_info", "forged_mac"
    infno: str  # "2207", ...
    outcome: str  # "OK" or the err_code ("MAC_INVALID", ...), or "HTTP_ERROR"/"CONNECT_ERROR"
    expected: bool  # the outcome was one the scenario expects
    mac2_ok: bool | None  # MAC2 checked: True/False; None when no MAC2 was expected


def percentile(sorted_values: Sequence[float], p: float | str | Fraction) -> float | None:
    """The nearest-rank percentile ``p`` (0..100) of already sorted values, or None when there are none.

    ``p`` may be a string ("99.9") or a Fraction to keep it exact; a float is converted through its repr.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    frac = Fraction(p) if not isinstance(p, float) else Fraction(repr(p))
    if not 0 <= frac <= 100:
        raise ValueError(f"percentile out of range: {p!r}")
    rank = math.ceil(frac * n / 100)
    return sorted_values[max(rank, 1) - 1]


def is_error(outcome: str) -> bool:
    """A transport or HTTP-level failure: CONNECT_ERROR, HTTP_ERROR or HTTP_<status>."""
    return outcome == "CONNECT_ERROR" or outcome.startswith("HTTP_")


def _sent(samples: Iterable[Sample]) -> list[Sample]:
    """The samples that were actually sent (not NO_TERMINAL arrivals)."""
    return [s for s in samples if s.outcome not in NOT_SENT_OUTCOMES]


def _latency(values: Iterable[float]) -> dict[str, Any]:
    """``{count, p50, p90, p99, p99_9, max, mean}`` of the values (figures None when there are none)."""
    xs = sorted(values)
    out: dict[str, Any] = {"count": len(xs)}
    for key, p in _PERCENTILES:
        out[key] = percentile(xs, p)
    out["max"] = xs[-1] if xs else None
    out["mean"] = math.fsum(xs) / len(xs) if xs else None
    return out


def _rate(count: int, duration_s: float) -> float | None:
    """Requests per second over the measured seconds, None when there are none."""
    return count / duration_s if duration_s > 0 else None


def _sorted_counts(counter: Counter[str]) -> dict[str, int]:
    """A Counter as a plain dict with sorted keys (stable JSON)."""
    return {k: counter[k] for k in sorted(counter)}


def timeseries(samples: Sequence[Sample], *, warmup_s: float, duration_s: float | None = None) -> list[dict[str, Any]]:
    """Per-second rows of the whole run (warm-up included), as documented under ``timeseries`` in the module doc.

    Without ``duration_s`` the window is open-ended: ``measured`` is true for every second after the warm-up.
    """
    if not samples:
        return []
    by_second: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_second[max(math.floor(s.t), 0)].append(s)
    end = math.inf if duration_s is None else warmup_s + duration_s
    rows = []
    for second in range(max(by_second) + 1):
        arrivals = by_second.get(second, [])
        group = _sent(arrivals)
        whole = sorted(s.whole_ms for s in group)
        gateway = sorted(s.gateway_ms for s in group if s.gateway_ms is not None)
        rows.append(
            {
                "second": second,
                "warmup": second < warmup_s,
                "measured": second >= warmup_s and second + 1 <= end,
                "sent": len(group),
                "not_sent": len(arrivals) - len(group),
                "ok": sum(1 for s in group if s.outcome == "OK"),
                "errors": sum(1 for s in group if is_error(s.outcome)),
                "whole_p50_ms": percentile(whole, "50"),
                "whole_p99_ms": percentile(whole, "99"),
                "gateway_p50_ms": percentile(gateway, "50"),
                "gateway_p99_ms": percentile(gateway, "99"),
            }
        )
    return rows


def summarize(samples: Sequence[Sample], *, warmup_s: float, duration_s: float, meta: dict[str, Any]) -> dict[str, Any]:
    """The run's figures over the measurement window, as a JSON-serializable dict (keys in the module doc).

    Never raises on empty input: counts are 0 and figures None.
    """
    end_s = warmup_s + duration_s
    kept = [s for s in samples if warmup_s <= s.t < end_s]
    n_warmup = sum(1 for s in samples if s.t < warmup_s)

    sent = _sent(kept)
    by_scenario: dict[str, list[Sample]] = defaultdict(list)
    infno_counts: Counter[str] = Counter()
    infno_sent: Counter[str] = Counter()
    for s in kept:
        by_scenario[s.scenario].append(s)
        infno_counts[s.infno] += 1
        if s.outcome not in NOT_SENT_OUTCOMES:
            infno_sent[s.infno] += 1

    unexpected = Counter((s.scenario, s.outcome) for s in kept if not s.expected)
    top = sorted(unexpected.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:TOP_UNEXPECTED]
    errors: Counter[str] = Counter({k: 0 for k in ERROR_OUTCOMES})
    errors.update(s.outcome for s in kept if is_error(s.outcome))

    scenarios: dict[str, Any] = {}
    for name in sorted(by_scenario):
        group = by_scenario[name]
        group_sent = _sent(group)
        scenarios[name] = {
            "count": len(group),
            "not_sent": len(group) - len(group_sent),
            "throughput_rps": _rate(len(group_sent), duration_s),
            "latency_ms": {
                "whole": _latency(s.whole_ms for s in group_sent),
                "gateway": _latency(s.gateway_ms for s in group_sent if s.gateway_ms is not None),
            },
            "outcomes": _sorted_counts(Counter(s.outcome for s in group)),
            "unexpected": sum(1 for s in group if not s.expected),
            "mac2_failures": sum(1 for s in group if s.mac2_ok is False),
            "errors": sum(1 for s in group if is_error(s.outcome)),
        }

    return {
        "schema": SCHEMA,
        "percentile_method": PERCENTILE_METHOD,
        "meta": meta,
        "window": {
            "warmup_s": warmup_s,
            "duration_s": duration_s,
            "start_s": warmup_s,
            "end_s": end_s,
            "samples_total": len(samples),
            "samples_warmup": n_warmup,
            "samples_after": len(samples) - n_warmup - len(kept),
            "samples_measured": len(kept),
        },
        "count": len(kept),
        "not_sent": len(kept) - len(sent),
        "duration_s": duration_s,
        "throughput_rps": _rate(len(sent), duration_s),
        "latency_ms": {
            "whole": _latency(s.whole_ms for s in sent),
            "gateway": _latency(s.gateway_ms for s in sent if s.gateway_ms is not None),
        },
        "outcomes": _sorted_counts(Counter(s.outcome for s in kept)),
        "unexpected": {
            "count": unexpected.total(),
            "top": [{"scenario": sc, "outcome": oc, "count": c} for (sc, oc), c in top],
        },
        "mac2": {
            "checked": sum(1 for s in kept if s.mac2_ok is not None),
            "failures": sum(1 for s in kept if s.mac2_ok is False),
        },
        "errors": {"count": errors.total(), "by_kind": _sorted_counts(errors)},
        "scenarios": scenarios,
        "infnos": {
            k: {"count": infno_counts[k], "throughput_rps": _rate(infno_sent[k], duration_s)}
            for k in sorted(infno_counts)
        },
        "timeseries": timeseries(samples, warmup_s=warmup_s, duration_s=duration_s),
    }


def write_json(result: dict[str, Any], path: Path) -> Path:
    """Write the result as pretty (indent 2) UTF-8 JSON, creating parent directories; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _log_points(values: Iterable[float | None]) -> list[float]:
    """Values for a log axis: missing and non-positive ones become NaN (a gap in the line)."""
    return [v if v is not None and v > 0 else math.nan for v in values]


def plot(samples: Sequence[Sample], path: Path, *, warmup_s: float, title: str) -> Path:
    """A 1200x800 PNG: throughput per second (sent, OK) over latency per second (p50/p99, whole and gateway).

    Both panels share the time axis (seconds since run start) and shade the warm-up. Uses ``Figure`` and
    ``FigureCanvasAgg`` directly, never pyplot, so the process's matplotlib backend is left alone.
    """
    # Imported here: matplotlib is the optional ``loadtest`` extra, and summarize() must not need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    rows = timeseries(samples, warmup_s=warmup_s)
    x = [r["second"] + 0.5 for r in rows]  # a second's figures sit at its middle

    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    fig.suptitle(title, fontsize=14)

    top.plot(x, [r["sent"] for r in rows], color="tab:blue", linewidth=1.6, label="sent")
    top.plot(x, [r["ok"] for r in rows], color="tab:green", linewidth=1.6, label="OK")
    if any(r["not_sent"] for r in rows):
        top.plot(x, [r["not_sent"] for r in rows], color="tab:red", linewidth=1.2, label="not sent (no terminal)")
    top.set_ylabel("requests / s")
    top.set_ylim(bottom=0)
    top.set_title("Throughput per second", fontsize=11, loc="left")

    series = (
        ("whole_p50_ms", "whole p50", "tab:blue", "-"),
        ("whole_p99_ms", "whole p99", "tab:blue", "--"),
        ("gateway_p50_ms", "gateway p50", "tab:orange", "-"),
        ("gateway_p99_ms", "gateway p99", "tab:orange", "--"),
    )
    for key, label, color, style in series:
        bottom.plot(x, _log_points(r[key] for r in rows), color=color, linestyle=style, linewidth=1.4, label=label)
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))

    def minor_label(v: float, _pos: int | None) -> str:
        # Plain numbers at 2x and 5x, and only when the axis spans under two decades (otherwise they crowd).
        lo, hi = bottom.get_ylim()
        lead = round(v / 10 ** math.floor(math.log10(v) + 1e-9)) if v > 0 else 0
        return f"{v:g}" if lo > 0 and hi / lo < 100 and lead in (2, 5) else ""

    bottom.yaxis.set_minor_formatter(FuncFormatter(minor_label))
    bottom.set_ylabel("latency, ms (log)")
    bottom.set_xlabel("seconds since run start")
    bottom.set_title("Latency per second: whole request and gateway's own", fontsize=11, loc="left")

    right = max([warmup_s, *(r["second"] + 1 for r in rows)], default=1) or 1
    for ax in (top, bottom):
        if warmup_s > 0:
            ax.axvspan(0, warmup_s, color="0.6", alpha=0.2, linewidth=0, label="warm-up (trimmed)")
        ax.set_xlim(0, right)
        ax.grid(True, which="major", alpha=0.4)
        ax.grid(True, which="minor", axis="y", alpha=0.15)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, borderaxespad=0)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _ms(v: float | None) -> str:
    """A latency for the terminal: 3 significant-ish digits, '-' when missing."""
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _rps(v: float | None) -> str:
    """A rate for the terminal, '-' when missing."""
    return "-" if v is None else f"{v:.1f}"


def render_text(result: dict[str, Any]) -> str:
    """A compact terminal summary of a ``summarize`` result (also one read back from the JSON file)."""
    w = result["window"]
    lines = [
        f"{result['count']} requests in {result['duration_s']:g} s measured "
        f"(warm-up {w['warmup_s']:g} s, {w['samples_warmup']} trimmed; {w['samples_after']} after the window): "
        f"{_rps(result['throughput_rps'])}/s"
        + (f", {result['not_sent']} not sent (no free terminal)" if result["not_sent"] else "")
    ]
    for kind, label in (("whole", "whole  "), ("gateway", "gateway")):
        lat = result["latency_ms"][kind]
        lines.append(
            f"latency {label} ms: p50 {_ms(lat['p50'])}  p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}  "
            f"p99.9 {_ms(lat['p99_9'])}  max {_ms(lat['max'])}  mean {_ms(lat['mean'])}  (n={lat['count']})"
        )
    outcomes = sorted(result["outcomes"].items(), key=lambda kv: (-kv[1], kv[0]))
    lines.append("outcomes: " + (", ".join(f"{k} {v}" for k, v in outcomes) or "-"))
    unexpected = result["unexpected"]
    top = ", ".join(f"{u['scenario']}/{u['outcome']} {u['count']}" for u in unexpected["top"][:3])
    lines.append(
        f"unexpected: {unexpected['count']}"
        + (f" ({top})" if top else "")
        + f"   mac2 failures: {result['mac2']['failures']}/{result['mac2']['checked']}"
        + f"   errors: {result['errors']['count']}"
    )
    scenarios = result["scenarios"]
    if scenarios:
        width = max(len("scenario"), *(len(k) for k in scenarios))
        header = ("scenario", "rate/s", "p50", "p99", "p99.9", "gw p99", "unexpected")
        lines.append("")
        lines.append(f"{header[0]:<{width}}  " + "  ".join(f"{h:>10}" for h in header[1:]))
        for name, sc in scenarios.items():
            whole, gateway = sc["latency_ms"]["whole"], sc["latency_ms"]["gateway"]
            cells = (
                _rps(sc["throughput_rps"]),
                _ms(whole["p50"]),
                _ms(whole["p99"]),
                _ms(whole["p99_9"]),
                _ms(gateway["p99"]),
                str(sc["unexpected"]),
            )
            lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)
