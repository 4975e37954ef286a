"""bench's report: the client processes' results summed, as a JSON object or a table.

Latencies are given only when there are samples: a run that could not
connect, or got no chunk, says so instead of showing zeros.
"""

from __future__ import annotations

import collections
from typing import Any

import click

__all__ = ["build_report", "print_table"]

_MS = 1000.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _quantiles(values: list[float], names: tuple[str, ...]) -> dict[str, float] | None:
    if not values:
        return None
    points = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    out = {q: round(_percentile(values, points[q]) * _MS, 3) for q in names if q in points}
    if "max" in names:
        out["max"] = round(max(values) * _MS, 3)
    return out


def build_report(
    results: list[dict[str, Any]],
    wall: float,
    *,
    connections: int,
    rate: float = 0.0,
    duration: float = 0.0,
) -> dict[str, Any]:
    """The run's report from each client process's result.

    Args:
        results: what :func:`~.loadgen.run_process` returned, per process.
        wall: the run's seconds.
        connections: the connections asked for.
        rate: the requests per second asked for (0: closed loop).
        duration: the seconds requests were sent for (0: a request count).
    """
    ttfc = [v for r in results for v in r["ttfc"]]
    gaps = [v for r in results for v in r["gaps"]]
    failures: collections.Counter[str] = collections.Counter()
    for r in results:
        failures.update(r["failures"])
    chunks = sum(r["chunks"] for r in results)
    ok, sent = sum(r["ok"] for r in results), sum(r["sent"] for r in results)
    loaded = max((r["wall"] for r in results), default=0.0)  # the load, without start-up
    return {
        "requests_ok": ok,
        "requests_failed": dict(failures),
        "requests_sent": sent,
        "requests_cut": sum(r["cut"] for r in results),
        "requests_per_s": {
            "target": rate or None,
            "sent": _per_s(sent, duration or loaded),
            "ok": _per_s(ok, max(duration, loaded)),
        },
        "connections_opened": sum(r["opened"] for r in results),
        "connections": connections,
        "ttfc_ms": _quantiles(ttfc, ("p50", "p90", "p99", "max")),
        "chunk_gap_ms": _quantiles(gaps, ("p50", "p99")),
        "chunks": chunks,
        "chunks_per_s": _per_s(chunks, wall),
        "bytes_per_s": _per_s(sum(r["bytes"] for r in results), wall),
        "seconds": round(wall, 3),
        "client_cpu": [round(r["cpu"], 3) for r in results],
    }


def _per_s(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def _latency(report: dict[str, Any], key: str, names: tuple[str, ...]) -> str:
    values = report[key]
    if values is not None:
        return "/".join(str(values[q]) for q in names)
    if not report["connections_opened"]:
        return "none: could not connect"
    return "none: no chunk arrived" if key == "ttfc_ms" else "none: no answer had two chunks"


def _sent(report: dict[str, Any]) -> str:
    rates = report["requests_per_s"]
    line = f"{report['requests_sent']} ({rates['sent']}/s"
    return line + (f" of {rates['target']:g}/s asked)" if rates["target"] else ")")


def print_table(report: dict[str, Any]) -> None:
    """The report as a table on stdout."""
    opened = f"{report['connections_opened']} of {report['connections']}"
    rows = [
        ("connections opened", opened),
        ("requests sent", _sent(report)),
        ("requests ok", f"{report['requests_ok']} ({report['requests_per_s']['ok']}/s)"),
        *((f"failed: {kind}", n) for kind, n in sorted(report["requests_failed"].items())),
        ("cut, still in flight at the end", report["requests_cut"]),
        (
            "time to first chunk p50/p90/p99/max ms",
            _latency(report, "ttfc_ms", ("p50", "p90", "p99", "max")),
        ),
        ("time between chunks p50/p99 ms", _latency(report, "chunk_gap_ms", ("p50", "p99"))),
        ("chunks/s", report["chunks_per_s"]),
        ("bytes/s", report["bytes_per_s"]),
        ("client CPU per process", ", ".join(f"{c:.0%}" for c in report["client_cpu"])),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
