"""A compact terminal summary of a result (`render_text`)."""

from __future__ import annotations

from typing import Any


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
