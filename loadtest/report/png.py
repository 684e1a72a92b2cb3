"""The run as a PNG: throughput per second over latency per second.

Imports matplotlib lazily (the ``loadtest`` extra) and draws on a ``matplotlib.figure.Figure`` with
``FigureCanvasAgg`` directly: pyplot is never imported and the global backend is never set, so this is safe in
threads, subprocesses and next to other matplotlib users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from loadtest.report.sample import Sample
from loadtest.report.summary import timeseries


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
