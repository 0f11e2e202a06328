"""bench.sfu runs end to end in smoke mode and reports what it measured.

No timing assertions (figures belong to bench/): the script must exit 0, print one JSON
object on its last line with the documented keys, and its own counters must say the SFU
forwarded packets over real DTLS/SRTP connections in every phase, which the subscribers
received, and that the loudest-only phase forwarded less audio than the phase forwarding
every microphone.
"""

from __future__ import annotations

import json
import subprocess
import sys

PHASES = ("fanout", "lesson", "lesson_loudest")


def test_sfu_bench_smoke_runs_and_reports() -> None:
    argv = [sys.executable, "-m", "bench.sfu", "--smoke", "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["bench"] == "sfu" and result["smoke"] is True
    for key in (
        "forwarded_packets_per_server_cpu_s",
        "added_p50_ms",
        "added_p99_ms",
        "lesson_cpu_share",
        "lesson_loudest_cpu_share",
    ):
        assert isinstance(result[key], int | float), key
    for key in ("met_packets_per_server_cpu_s", "met_lesson_cpu_share", "met_added_p99"):
        assert isinstance(result[key], bool), key
    for phase in PHASES:
        assert result[f"{phase}_forwarded"] > 0, phase
        # Subscribers counted (still encrypted) what the SFU says it sent, give or take
        # the packets in flight at the edges of the window.
        assert result[f"{phase}_received"] >= 0.8 * result[f"{phase}_forwarded"], phase
        assert result[f"{phase}_answer_errors"] == 0, phase
        assert result[f"{phase}_latency_samples"] > 0, phase
    assert result["fanout_direct_p50_ms"] > 0  # the direct aiortc pair ran alongside
    # The protect-and-send ceiling ran on the server's CPU, and its datagrams arrived.
    assert result["ceiling_packets_per_cpu_s"] > 0 and result["ceiling_received"] > 0
    assert result["forwarded_share_of_ceiling"] > 0
    # Paced at one fan-out per published packet: the interval follows the publishers' rate.
    assert result["ceiling_paced_interval_ms"] == round(1000 / result["fanout_published_per_s"], 3)
    assert result["ceiling_paced_received"] > 0 and result["forwarded_share_of_paced_ceiling"] > 0
    copies = {p: result[f"{p}_forwarded"] / published(result, p) for p in PHASES}
    # 1 publisher (audio + video) to 2 subscribers: every packet is forwarded twice.
    assert 1.6 < copies["fanout"] < 2.4, copies
    # Teacher + 3 pupils, every microphone to the 3 others; with loudest_audio = 3 one
    # microphone of the four is not forwarded: fewer copies of each published packet.
    assert copies["lesson_loudest"] < copies["lesson"], copies


def published(result: dict[str, float], phase: str) -> float:
    return result[f"{phase}_published_per_s"] * result[f"{phase}_measured_s"]
