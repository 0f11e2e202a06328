"""bench.roster runs end to end on a small generated school and reports what it measured.

No timing assertions (figures belong to bench/): the script must exit 0, print one JSON
object on its last line with the documented keys, and its correctness figures must say the
import applied everything once and the re-deliveries applied nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

PHASES = ("import", "redelivery", "move", "snapshot", "snapshot_redelivery")  # + late links


def test_roster_bench_runs_and_reports() -> None:
    argv = ["bench.roster", "--users", "300", "--classes", "6", "--batch", "400", "--json"]
    out = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])

    for phase in PHASES:
        for suffix in ("s", "cpu_s", "events", "applied", "unchanged", "rejected"):
            assert isinstance(result[f"{phase}_{suffix}"], int | float), (phase, suffix)
    for name in ("import", "redelivery"):
        assert isinstance(result[f"target_{name}_s"], float)
        assert isinstance(result[f"met_{name}"], bool)
    assert result["ok"] is True
    assert (result["users"], result["classes"], result["batches"]) == (300, 6, 2)
    assert result["linked_accounts"] == 60  # the default 20 %
    assert result["late_links"] == 20 and result["late_link_p50_ms"] > 0

    assert result["import_applied"] == result["changes"] and result["import_rejected"] == 0
    assert result["import_events"] > 0  # linked people were put into their chats
    assert result["redelivery_applied"] == 0
    assert result["redelivery_unchanged"] == result["changes"]
    assert result["redelivery_events"] == 0
    assert result["move_applied"] == result["moved_students"] == 3
    assert result["move_events"] > 0
    # Sampled linked users (and the moved ones) are in exactly the chats they should be.
    assert result["spot_check_mismatches"] == 0 and result["spot_checked_chats"] > 0
    assert result["snapshot_applied"] == result["changes"]
    assert result["snapshot_redelivery_applied"] == 0
    assert result["snapshot_redelivery_deactivated"] == 0
