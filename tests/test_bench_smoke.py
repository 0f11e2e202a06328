"""The benchmark scripts still run end to end and report correct delivery.

Tiny loads, no timing assertions (figures belong to bench/, not tests): each script must
exit 0, print one JSON object on its last line with the documented keys, and its own
correctness counters must say every message arrived.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CASES = [
    (
        ["bench.send", "--seconds", "1", "--warmup", "0.2", "--rate", "200"],
        {"server_cpu_ms_per_msg", "p50_ms", "p99_ms"},
        lambda r: r["complete"] and r["received"] == r["messages"],
    ),
    (
        ["bench.fanout", "--members", "20", "--seconds", "1", "--warmup", "0.2"],
        {
            "deliveries_per_server_cpu_s",
            "p50_ms",
            "p99_ms",
            "baseline_deliveries_per_server_cpu_s",
            "ratio_to_baseline",
        },
        lambda r: (
            r["delivered"] == r["expected"] > 0
            and r["baseline_delivered"] == r["baseline_expected"] > 0
        ),
    ),
    (
        ["bench.resume", "--events", "300", "--repeats", "1"],
        {"seconds"},
        lambda r: r["events"] == r["expected"] == 300,
    ),
    (
        ["bench.idle", "--connections", "50", "--settle", "0.2"],
        {"kib_per_connection"},
        lambda r: r["still_open"] == r["connections"] == 50,
    ),
]


@pytest.mark.parametrize(("argv", "keys", "correct"), CASES, ids=[c[0][0] for c in CASES])
def test_bench_runs_and_reports(argv, keys, correct) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", *argv, "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert keys <= result.keys()
    assert correct(result), result
