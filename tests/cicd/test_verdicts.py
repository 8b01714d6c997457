"""The verdict rules, table-tested: one row per situation, like the decision engine's."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.verdicts import Facts, judge

START = 1_000.0
SOAK_END = 1_600.0
DEPLOYMENT = {"id": "dep1", "status": "in_progress", "started_at": START, "soak_until": SOAK_END}


def decision(status: str, action: str = "rollback", **kw: Any) -> dict[str, Any]:
    base = {"id": f"d-{status}", "action": action, "status": status, "mode": "auto", "strategy": "undo",
            "reasons": ["because"], "to_revision": 2, "kill_switch": False, "alert_started_at": START + 10}  # fmt: skip
    return {**base, **kw}


FIRING_UNDECIDED = {"id": 1, "name": "ErrorRateHigh", "decided": False}
FIRING_DECIDED = {"id": 2, "name": "LatencyHigh", "decided": True}
NO_DATA = {"id": 3, "name": "HealthDataMissing"}

ROWS = [
    # (name, facts, now, status, phase, text in the message)
    ("soaking", Facts(), START + 60, "in_progress", "soaking", "9m left"),
    ("healthy after the soak", Facts(), SOAK_END, "healthy", "healthy", "no rollback and no rollback-worthy alert"),
    ("a rollback succeeded", Facts(decisions=(decision("succeeded"),)), START + 60, "rolled_back", "rolled_back",
     "rolled back to revision 2 by decision d-succeeded"),
    ("a rollback is running", Facts(decisions=(decision("executing"),)), SOAK_END + 1, "in_progress", "rolling_back",
     "is rolling the target back"),
    ("a manual rollback is queued", Facts(decisions=(decision("queued", mode="manual"),)), START + 1, "in_progress",
     "rolling_back", "d-queued"),
    ("waiting for approval", Facts(decisions=(decision("pending_approval"),)), SOAK_END + 1, "in_progress",
     "awaiting_approval", "waits for a person"),
    ("a rejected rollback does not count", Facts(decisions=(decision("rejected"),)), SOAK_END, "healthy", "healthy",
     ""),
    ("superseded approval does not count", Facts(decisions=(decision("superseded"),)), SOAK_END, "healthy", "healthy",
     ""),
    ("observe mode recorded a rollback", Facts(decisions=(decision("recorded", mode="observe"),)), START + 60, "bad",
     "bad", "would roll back (mode observe, not executed)"),
    ("held for a person", Facts(decisions=(decision("held", action="hold", reasons=["3 rollbacks reach the limit"]),)),
     START + 60, "bad", "bad", "holds the target for a person: 3 rollbacks reach the limit"),
    ("a manual rollback could not proceed", Facts(decisions=(decision("held"),)), START + 60, "bad", "bad", "holds"),
    ("the rollback failed", Facts(decisions=(decision("failed"),)), START + 60, "bad", "bad", "d-failed failed"),
    ("the rollback stopped", Facts(decisions=(decision("stopped"),)), START + 60, "bad", "bad", "stopped"),
    ("succeeded beats failed", Facts(decisions=(decision("failed"), decision("succeeded"))), START + 60,
     "rolled_back", "rolled_back", ""),
    ("running beats failed", Facts(decisions=(decision("failed"), decision("executing"))), START + 60, "in_progress",
     "rolling_back", ""),
    ("ignored decisions do not count", Facts(decisions=(decision("ignored", action="ignore"),)), SOAK_END, "healthy",
     "healthy", ""),
    ("the kill switch swallowed an alert of this deploy",
     Facts(decisions=(decision("ignored", action="ignore", kill_switch=True),)), START + 60, "bad", "bad",
     "kill switch"),
    ("the kill switch and a pre-existing alert",
     Facts(decisions=(decision("ignored", action="ignore", kill_switch=True, alert_started_at=START - 5),)), SOAK_END,
     "healthy", "healthy", ""),
    ("an alert not decided yet, in the soak", Facts(firing=(FIRING_UNDECIDED,)), START + 1, "in_progress", "deciding",
     "'ErrorRateHigh' fired"),
    ("an alert not decided yet, after the soak", Facts(firing=(FIRING_UNDECIDED,)), SOAK_END, "in_progress",
     "deciding", "not decided yet"),
    ("a decided, ignored alert still firing", Facts(firing=(FIRING_DECIDED,)), SOAK_END, "healthy", "healthy", ""),
    ("missing data at the end of the soak", Facts(no_data=(NO_DATA,)), SOAK_END, "insufficient_data",
     "insufficient_data", "'HealthDataMissing' reports missing data"),
    ("missing data during the soak: wait", Facts(no_data=(NO_DATA,)), START + 1, "in_progress", "soaking", ""),
    ("a rollback beats missing data", Facts(decisions=(decision("succeeded"),), no_data=(NO_DATA,)), SOAK_END,
     "rolled_back", "rolled_back", ""),
    ("Prometheus: never sufficient", Facts(sufficient=False, sufficiency_detail="no series"), SOAK_END,
     "insufficient_data", "insufficient_data", "never had sufficient data during the 10m soak: no series"),
    ("Prometheus: sufficient", Facts(sufficient=True), SOAK_END, "healthy", "healthy", ""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "facts", "now", "status", "phase", "text"), ROWS, ids=[r[0] for r in ROWS])
def test_verdict(name: str, facts: Facts, now: float, status: str, phase: str, text: str) -> None:
    judgement = judge(DEPLOYMENT, facts, now=now)
    assert (judgement.status, judgement.phase) == (status, phase), judgement
    assert text in judgement.message


def test_final_verdicts_stay() -> None:
    done = {**DEPLOYMENT, "status": "healthy", "verdict_reason": "soaked"}
    judgement = judge(done, Facts(decisions=(decision("succeeded"),)), now=SOAK_END + 10)
    assert (judgement.status, judgement.message) == ("healthy", "soaked")


def test_when_to_look_again() -> None:
    assert judge(DEPLOYMENT, Facts(), now=START).recheck_at == SOAK_END, "soaking: at the end of the soak"
    assert judge(DEPLOYMENT, Facts(firing=(FIRING_UNDECIDED,)), now=SOAK_END).recheck_at == SOAK_END + 1
    assert judge(DEPLOYMENT, Facts(decisions=(decision("pending_approval"),)), now=SOAK_END).recheck_at == SOAK_END + 5
    assert judge(DEPLOYMENT, Facts(), now=SOAK_END).recheck_at is None
