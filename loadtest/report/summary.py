"""The run's figures over the measurement window (`summarize`), per second (`timeseries`), and the JSON file.

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
from pathlib import Path
from typing import Any

from loadtest.report.sample import ERROR_OUTCOMES, NOT_SENT_OUTCOMES, Sample, is_error, only_sent, percentile

SCHEMA = "onecard-loadtest-result/1"
PERCENTILE_METHOD = (
    "nearest-rank: the ceil(p/100*n)-th smallest of n values (the smallest for p=0), exact fractions; "
    "None when there are no values"
)
TOP_UNEXPECTED = 10
# (JSON key, percentile) pairs of the latency summary; strings keep 99.9 exact.
_PERCENTILES = (("p50", "50"), ("p90", "90"), ("p99", "99"), ("p99_9", "99.9"))


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
        group = only_sent(arrivals)
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

    sent = only_sent(kept)
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
        group_sent = only_sent(group)
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
