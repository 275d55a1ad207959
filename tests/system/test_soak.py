"""System test: the soak of the whole network, shortened (see bench/soak.py).

Two real ``serve`` processes, each SIGKILLed twice and restarted, PostgreSQL crashed once, about
200 invoices sent through AP-A's REST API by concurrent clients that retry with the same
Idempotency-Key, and a webhook that refuses deliveries at first. Nothing may be lost, nothing
received twice, nothing left in a non-final state, every ``document.received`` event delivered
with a valid signature, and no process of a killed gateway left behind. It runs for a minute or
two; the failing summary is printed in full, so it says what went wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.paths import ROOT


def test_nothing_is_lost_and_nothing_arrives_twice_while_everything_crashes() -> None:
    args = ["--docs", "200", "--kills-a", "2", "--kills-b", "2", "--pg-restarts", "1", "--clients", "6"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args, "--seed", os.environ.get("SOAK_SEED", "20261201")],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert run.stdout.strip(), run.stderr[-4000:]
    summary = json.loads(run.stdout)
    shown = json.dumps(summary, indent=2)
    assert summary["submitted"] == 200 and summary["refused"] == 0, shown
    assert summary["kills"] == {"AP-A": 2, "AP-B": 2} and summary["pg_restarts"] == 1, shown
    zeros = ("duplicated", "lost", "stuck", "failed", "sender_duplicate_jobs", "resubmit_mismatch", "orphans")
    assert {k: summary[k] for k in zeros} == dict.fromkeys(zeros, 0), shown
    assert summary["webhook_events_delivered"] == summary["webhook_events_expected"] > 0, shown
    assert summary["webhook_bad_signature"] == 0, shown
    assert summary["ok"] and run.returncode == 0, shown
