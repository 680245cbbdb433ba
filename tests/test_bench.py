"""The realtime benchmark's own arithmetic (bench/loadgen.py): percentiles, sequence checks and
the lost/duplicated accounting the reported numbers rest on."""

import math
import subprocess
import sys

from bench.common import server_env
from bench.loadgen import SeqCheck, percentile, summarize


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
