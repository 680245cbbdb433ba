"""The realtime benchmark's own arithmetic (bench/loadgen.py): percentiles, sequence checks and
the lost/duplicated accounting the reported numbers rest on."""

import math
import subprocess
import sys
from dataclasses import asdict

from bench.common import DAPHNE_OPTIONS, server_env
from bench.loadgen import SeqCheck, Summary, percentile, summarize
from bench.realtime import agree, markdown_table
from chat.management.commands.serve import daphne_options


def test_percentile_is_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_seq_check_counts_duplicates_and_gaps():
    check = SeqCheck(last=3)
    assert [check.see(s) for s in (4, 5, 5, 3, 8, 9)] == [True, True, False, False, True, True]
    assert (check.duplicates, check.gaps, check.last) == (2, 1, 9)


def test_summary_counts_lost_only_among_acknowledged_and_latency_at_the_peer():
    ms = 1_000_000
    sent = {"a": 0, "b": 10 * ms, "c": 20 * ms, "d": 30 * ms}
    delivered = {"a": 5 * ms, "b": 40 * ms}
    summary = summarize("t", 2.0, sent, delivered, {"a", "b", "c"}, 1, {"rate_limited": 1}, 0.5)
    assert (summary.sent, summary.delivered, summary.lost, summary.duplicates) == (4, 2, 1, 1)
    assert (summary.p50, summary.max) == (5.0, 30.0)
    assert summary.rate == 1.0
    assert not summary.ok(50)  # one lost
    relay = summarize("t", 1.0, {"a": 0}, {"a": 2 * ms}, None, 0, {}, 0.1)
    assert (relay.lost, relay.p99) == (0, 2.0)
    assert relay.ok(50)


def test_the_benchmarks_server_takes_all_the_load_clients_sockets_from_one_address():
    """The load client opens thousands of sockets from 127.0.0.1; the server the benchmarks start
    must not cap them at the per-address default (a merged cap once broke bench/escalation)."""
    script = "import django; django.setup(); from django.conf import settings as s; "
    script += "print(s.WS_MAX_CONNECTIONS_PER_ADDRESS, s.WS_FRAMES_PER_SECOND)"
    out = subprocess.run(
        [sys.executable, "-c", script], env=server_env(), capture_output=True, text=True, check=True
    ).stdout.split()
    cap, frames = int(out[0]), float(out[1])
    assert cap >= 2 * 2_000 + 2 * 200 + 10  # bench/escalation at N = 2,000
    assert frames >= 10_000


def test_the_benchmarks_daphne_runs_with_the_options_serve_gives_it():
    """The bench starts daphne itself (it loads no Django settings): the same options as
    `manage.py serve`, so that what it measures is what is deployed."""
    assert list(DAPHNE_OPTIONS) == daphne_options()


def _phase(name: str, p99: float, delivered: int = 1000, lost: int = 0) -> Summary:
    ms = 1_000_000
    sent = {str(i): 0 for i in range(delivered + lost)}
    arrived = {str(i): int(p99 * ms) for i in range(delivered)}
    return summarize(name, 1.0, sent, arrived, set(sent), 0, {}, 0.1)


def test_two_runs_agree_within_15_percent_or_2_ms_and_on_the_verdict():
    assert agree(_phase("200/s", 20.0), _phase("200/s", 22.9), saturation=False)
    assert not agree(_phase("200/s", 20.0), _phase("200/s", 24.0), saturation=False)
    assert agree(_phase("200/s", 3.0), _phase("200/s", 4.9), saturation=False)  # timer noise
    # The same p99 within 15 %, but one run lost a message: a different story.
    assert not agree(_phase("200/s", 40.0), _phase("200/s", 41.0, lost=1), saturation=False)
    assert not agree(_phase("200/s", 48.0), _phase("200/s", 52.0), saturation=False)  # 50 ms
    assert agree(_phase("s", 900, delivered=1000), _phase("s", 90, 870), saturation=True)
    assert not agree(_phase("s", 90, delivered=1000), _phase("s", 90, 840), saturation=True)


def test_the_full_runs_table_is_the_one_in_the_docs():
    rate = lambda p99, lost=0: _phase("200/s", p99, lost=lost)  # noqa: E731
    phases = [rate(20.0), _phase("2000/s", 700.0), _phase("saturation", 90.0, delivered=1977)]
    for phase in phases:
        phase.extra["cpu"] = {"server": 0.81}
    phases[0].extra["agreed"] = "after 2 runs"
    as_dicts = [asdict(p) | {"rate": r} for p, r in zip(phases, (200, 2000, 1977), strict=True)]
    for d in as_dicts[:2]:
        d["delivered"] = d["sent"] = int(d["rate"])
    result = {
        "system": "Tierline",
        "sockets": 400,
        "phases": as_dicts,
        "rss_mb_per_1000_sockets": 37.0,
    }
    table = markdown_table([{"chats": 200, "systems": [result]}]).splitlines()
    assert table[0].startswith("| N (sockets) | system | held at p99 ≤ 50 ms, 0 lost |")
    assert table[2] == (
        "| 200 (400) | Tierline | 200 msg/s | 20.0 ms | 2000/s: p99 700 ms, 0 lost | 1,977 | 0 "
        "| 0.81 | 37.0 | after 2 runs |"
    )
