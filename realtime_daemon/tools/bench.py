"""``realtime-daemon bench``: load a running daemon from the outside, and check what it sends.

Connections are spread over ``--processes`` client processes (so that the
client is not what is measured), each running :mod:`.loadgen`; their
results are summed into one report (:mod:`.report`).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from typing import Any

import click

from realtime_daemon.tools.client import Reach, connection_options, daemon_url
from realtime_daemon.tools.loadgen import (
    Plan,
    Tally,
    load,
    make_prompt,
    run_process,
    share_progress,
)
from realtime_daemon.tools.report import build_report, print_table

__all__ = ["Plan", "Tally", "bench", "load", "make_prompt"]


_EPILOG = """\b
Exit status: 0 every request was answered and passed its checks; 1 a request
failed; 2 a bad option; 3 none failed, but the run was cut with requests
still in flight (--grace seconds after --duration).
"""


@click.command(
    short_help="Load a daemon and report latency, throughput and failures.",
    epilog=_EPILOG,
    context_settings={"show_default": True},
)
@click.argument("url", required=False)
@click.option("--connections", type=click.IntRange(min=1), default=10, help="WebSockets opened.")
@click.option(
    "--requests",
    type=click.IntRange(min=0),
    default=10,
    help="Requests per connection (0 with --duration: until it ends).",
)
@click.option(
    "--concurrent",
    type=click.IntRange(min=1),
    default=1,
    help="Requests in flight per connection (above 1, with request ids).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to run, instead of a request count.",
)
@click.option(
    "--prompt-chars",
    type=click.IntRange(min=1),
    default=100,
    help="Characters per prompt (1- to 4-byte UTF-8 mixed).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Requests per second overall, sent on schedule (open loop); 0: closed loop.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    help="Client processes the connections are spread over.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=5.0,
    help="Seconds after --duration for the answers in flight; those still in flight "
    "then are cut (reported, exit 3).",
)
@click.option("--model", default="bench", help="The requests' model.")
@click.option("--verify-text", is_flag=True, help="Check each answer equals its prompt (echo).")
@click.option("--json", "json_output", is_flag=True, help="The report as one JSON object.")
@connection_options
def bench(url: str | None, processes: int, json_output: bool, **options: Any) -> None:
    """Load the daemon at URL and report latency, throughput and what went wrong.

    URL: ws://, wss://, http:// (taken as ws) or https:// (as wss), or
    HOST:PORT; without a path, /v1/realtime. By default $REALTIME_DAEMON_URL,
    or ws://127.0.0.1:8000/v1/realtime.
    """
    url = daemon_url(url)
    reach = Reach.from_options(options)
    if options["duration"]:
        options["requests"] = 0
    elif not options["requests"]:
        raise click.UsageError("give --requests or --duration")
    started = time.monotonic()
    results = _run(_plans(url, reach, processes, options))
    report = build_report(
        results,
        time.monotonic() - started,
        connections=options["connections"],
        rate=options["rate"],
        duration=options["duration"],
    )
    if json_output:
        click.echo(json.dumps(report))
    else:
        print_table(report)
    _warn(url, report, results, options["grace"])
    if report["requests_failed"]:
        sys.exit(1)
    if report["requests_cut"]:
        sys.exit(3)


def _plans(
    url: str, reach: Reach, processes: int, options: dict[str, Any]
) -> list[tuple[Plan, int, int]]:
    """Each client process's plan, its first connection's index and its progress slot."""
    plans: list[tuple[Plan, int, int]] = []
    per, extra = divmod(options["connections"], processes)
    for n in range(processes):
        share = per + (n < extra)
        if share:
            rate = options["rate"] * share / options["connections"]
            plan = Plan(
                url=url,
                **{**options, "connections": share, "rate": rate},
                request_ids=options["concurrent"] > 1,
                reach=reach,
            )
            plans.append((plan, n * (per + 1), 2 * len(plans)))
    return plans


def _run(plans: list[tuple[Plan, int, int]]) -> list[dict[str, Any]]:
    """Run the plans in client processes (a progress line on a terminal); their results."""
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    progress = context.Array("q", 2 * len(plans), lock=False)
    with context.Pool(len(plans), initializer=share_progress, initargs=(progress,)) as pool:
        running = pool.starmap_async(run_process, plans)
        while not running.ready():
            running.wait(0.5)
            if sys.stderr.isatty():
                done, failed = sum(progress[0::2]), sum(progress[1::2])
                rate = (done + failed) / (time.monotonic() - started)
                click.echo(f"\r{done} requests, {rate:.0f}/s, {failed} failed ", nl=False, err=True)
        if sys.stderr.isatty():
            click.echo(err=True)
        results: list[dict[str, Any]] = running.get()
    return results


def _warn(url: str, report: dict[str, Any], results: list[dict[str, Any]], grace: float) -> None:
    """On stderr: what makes the numbers less than they seem."""
    if not report["connections_opened"]:
        click.echo(f"could not connect to {url}", err=True)
    rates = report["requests_per_s"]
    if rates["target"] and rates["sent"] < 0.95 * rates["target"]:
        click.echo(
            f"warning: sent {rates['sent']} requests/s of the {rates['target']:g} asked: the "
            "daemon pushed back (it stops reading a full queue) or the client fell behind",
            err=True,
        )
    if report["requests_cut"]:
        click.echo(
            f"warning: {report['requests_cut']} requests were still in flight {grace:g} s "
            "after --duration ended, and were cut: the daemon did not keep up",
            err=True,
        )
    for n, (cpu, result) in enumerate(zip(report["client_cpu"], results, strict=True)):
        if cpu > 0.9 and result["wall"] >= 1:
            click.echo(
                f"warning: client process {n} ran at {cpu:.0%} CPU: the client may be "
                "the bottleneck; add --processes",
                err=True,
            )
