"""The decision engine, table-tested: one row per rule, each row a situation and the decision it must give."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from reactor.engine import RULES, decide
from reactor.settings import Policy, ReleaseSettings
from reactor.store import History
from strategies import Capability, Revision, TargetRef, TargetState
from webhooks import Alert
from webhooks.model import TargetIdentity

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC).timestamp()
REF = TargetRef("kubernetes", "prod", "shop", "checkout")
ALL = frozenset(Capability)


class _S:
    """Stand-in strategy classes: the engine only reads ``requires``."""

    def __init__(self, *needs: Capability) -> None:
        self.requires = frozenset(needs)


REGISTERED: dict[str, Any] = {
    "undo": _S(Capability.REVERT),
    "blue_green": _S(Capability.SWITCH),
    "progressive": _S(Capability.WEIGHTS),
    "partial": _S(Capability.REVERT, Capability.COMPONENTS),
}


def alert(**kw: Any) -> Alert:
    identity = TargetIdentity("kubernetes", "prod", "shop", kw.pop("name", "checkout"), kw.pop("component", None))
    base: dict[str, Any] = {
        "source": "alertmanager",
        "fingerprint": "221e4dcea68d407f",
        "status": "firing",
        "name": "DeploymentHealthLow",
        "target": identity,
        "starts_at": datetime.fromtimestamp(NOW - 60, UTC),
        "severity": "warning",
    }
    base.update(kw)
    return Alert(**base)


def state(**kw: Any) -> TargetState:
    base: dict[str, Any] = {
        "target": REF,
        "current_revision": 3,
        "revisions": (Revision(1, image="shop:1"), Revision(2, image="shop:2"), Revision(3, image="shop:3")),
        "stable_revision": 2,
        "capabilities": frozenset({Capability.REVERT}),
    }
    base.update(kw)
    return TargetState(**base)


def rollback_record(ago: float, status: str = "succeeded") -> dict[str, Any]:
    return {"id": f"d{ago:.0f}", "action": "rollback", "status": status, "strategy": "undo", "created_at": NOW - ago}


def _created(at: float, *, naive: bool = False) -> tuple[Revision, ...]:
    """The default history, the running revision (3) created at ``at``."""
    when = datetime.fromtimestamp(at, UTC)
    return (Revision(1, image="shop:1"), Revision(2, image="shop:2"),
            Revision(3, image="shop:3", created_at=when.replace(tzinfo=None) if naive else when))  # fmt: skip


SHOP = ReleaseSettings.model_validate(
    {"components": {"checkout": {"depends_on": ["payments"]}, "payments": {}, "frontend": {"depends_on": ["checkout"]}}}
)


class Row:
    """One situation: what changes from the baseline, and what the decision must say."""

    fields: ClassVar[tuple[str, ...]] = ("alert", "policy", "state", "history", "kw")

    def __init__(self, name: str, expect: tuple[str, str | None, str], **changes: Any) -> None:
        self.name, self.expect, self.changes = name, expect, changes

    def __repr__(self) -> str:
        return self.name


ROWS = [
    Row("auto rollback with undo", ("rollback", "undo", "mode auto"), policy={"mode": "auto"}),
    Row("observe mode records", ("rollback", "undo", "mode observe"), policy={"mode": "observe"}),
    Row("recommend mode waits", ("rollback", "undo", "waiting for a person"), policy={"mode": "recommend"}),
    Row("resolved never starts one", ("ignore", None, "resolved"), alert={"status": "resolved"}),
    Row("kill switch", ("ignore", None, "kill switch"), kw={"kill_switch": True}),
    Row("kill switch flag in store", ("ignore", None, "kill switch"), history={"kill_switch": True}),
    Row("no workload", ("ignore", None, "names no workload"), alert={"name": None}),
    Row("a '/' in the name", ("ignore", None, "'shop/checkout' contains '/'"), alert={"name": "shop/checkout"}),
    Row("missing data", ("ignore", None, "missing data never rolls back"), alert={"failure_kind": "no_data"}),
    # An alert firing for 10 minutes. Without a registered deploy, the running revision's creation decides.
    Row(
        "pre-existing by the revision's creation",
        ("ignore", None, "before revision 3 was created at"),
        alert={"starts_at": datetime.fromtimestamp(NOW - 600, UTC)},
        state={"revisions": _created(NOW - 300)},
    ),
    Row(
        "pre-existing by a naive creation time",
        ("ignore", None, "no deploy was registered"),
        alert={"starts_at": datetime.fromtimestamp(NOW - 600, UTC)},
        state={"revisions": _created(NOW - 300, naive=True)},
    ),
    Row(
        "pre-existing comes before the rails, as with a registered deploy",
        ("ignore", None, "before revision 3 was created at"),
        alert={"starts_at": datetime.fromtimestamp(NOW - 600, UTC)},
        policy={"rollback_safe": False},
        history={"decisions": (rollback_record(60),)},
        state={"revisions": _created(NOW - 300)},
    ),
    Row(
        "created within the clock grace",
        ("rollback", "undo", "mode auto"),
        alert={"starts_at": datetime.fromtimestamp(NOW - 600, UTC)},
        state={"revisions": _created(NOW - 570)},
    ),
    Row(
        "created before the alert",
        ("rollback", "undo", "mode auto"),
        alert={"starts_at": datetime.fromtimestamp(NOW - 600, UTC)},
        state={"revisions": _created(NOW - 900)},
    ),
    Row("severity filter", ("ignore", None, "severity 'warning'"), policy={"severities": ("critical",)}),
    Row(
        "pre-existing alert",
        ("ignore", None, "pre-existing alert"),
        history={"deployment": {"id": "dep1", "revision": "3", "started_at": NOW - 30}},
    ),
    Row(
        "alert after the deploy counts",
        ("rollback", "undo", "mode auto"),
        policy={"mode": "auto"},
        history={"deployment": {"id": "dep1", "revision": "3", "started_at": NOW - 120}},
    ),
    Row(
        "in progress",
        ("ignore", None, "already in progress"),
        history={"decisions": ({**rollback_record(5), "status": "executing"},)},
    ),
    Row("cooldown", ("ignore", None, "cooldown"), history={"decisions": (rollback_record(100),)}),
    Row(
        "after cooldown",
        ("rollback", "undo", ""),
        policy={"cooldown_seconds": 60, "max_rollbacks": 3},
        history={"decisions": (rollback_record(100),)},
    ),
    Row(
        "max rollbacks per window",
        ("hold", None, "reach the limit"),
        policy={"cooldown_seconds": 60, "max_rollbacks": 2},
        history={"decisions": (rollback_record(100), rollback_record(1000))},
    ),
    Row(
        "ignored decisions do not count",
        ("rollback", "undo", ""),
        history={"decisions": ({**rollback_record(100), "status": "ignored"},)},
    ),
    Row("rollback_safe false", ("hold", None, "rollback_safe"), policy={"rollback_safe": False}),
    Row("platform error", ("hold", None, "could not describe"), state=None, kw={"state_error": "404"}),
    Row(
        "no previous revision",
        ("hold", None, "no revision to roll back to"),
        state={"revisions": (Revision(3),), "stable_revision": None},
    ),
    Row("stable revision preferred", ("rollback", "undo", "revision 2 is the platform's stable"), state={}),
    Row(
        "never onto a bad revision",
        ("rollback", "undo", "revision 2 is marked bad"),
        history={"marks": {"2": "bad"}},
    ),
    Row(
        "bad by image",
        ("rollback", "undo", "revision 2 is marked bad"),
        history={"marks": {"shop:2": "bad"}},
    ),
    Row(
        "every revision bad",
        ("hold", None, "every older revision is marked bad"),
        history={"marks": {"1": "bad", "2": "bad"}},
    ),
    Row(
        "last known good wins",
        ("rollback", "undo", "revision 1 is the last known good"),
        history={"marks": {"1": "good"}},
    ),
    Row(
        "critical → blue-green",
        ("rollback", "blue_green", "severity critical"),
        alert={"severity": "critical"},
        state={"capabilities": ALL, "colors": ("blue", "green"), "active_color": "green"},
    ),
    Row(
        "critical, but the idle colour runs a bad revision → undo",
        ("rollback", "undo", "the idle colour does not run revision 1"),
        alert={"severity": "critical"},
        state={
            "capabilities": ALL,
            "colors": ("blue", "green"),
            "active_color": "green",
            "color_revisions": {"blue": 2, "green": 3},
        },
        history={"marks": {"2": "bad"}},
    ),
    Row(
        "critical, the idle colour runs the chosen revision → blue-green",
        ("rollback", "blue_green", "severity critical"),
        alert={"severity": "critical"},
        state={
            "capabilities": ALL,
            "colors": ("blue", "green"),
            "active_color": "green",
            "color_revisions": {"blue": 2, "green": 3},
        },
    ),
    Row(
        "blue-green Service pair without revision history → switch to the idle colour",
        ("rollback", "blue_green", "the idle colour blue is the way back"),
        alert={"severity": "critical"},
        state={
            "capabilities": frozenset({Capability.SWITCH}),
            "current_revision": None,
            "stable_revision": None,
            "revisions": (),
            "colors": ("blue", "green"),
            "active_color": "green",
        },
    ),
    Row(
        "no revision history and no colours → hold",
        ("hold", None, "no revision to roll back to"),
        state={"current_revision": None, "stable_revision": None, "revisions": ()},
    ),
    Row(
        "critical without an idle colour → undo",
        ("rollback", "undo", "no idle colour"),
        alert={"severity": "critical"},
        state={"capabilities": ALL},
    ),
    Row(
        "crash without colours → undo",
        ("rollback", "undo", "failure kind crash: full undo"),
        alert={"failure_kind": "crash"},
    ),
    Row(
        "canary degradation → progressive",
        ("rollback", "progressive", "canary takes 20%"),
        state={"capabilities": ALL, "traffic": {"stable": 80, "canary": 20}},
    ),
    Row(
        "canary kind without a router → undo",
        ("rollback", "undo", "degradation during a canary, but"),
        alert={"failure_kind": "canary"},
    ),
    Row(
        "component failure → partial",
        ("rollback", "partial", "component of a multi-component release"),
        alert={"component": "checkout"},
        state={"capabilities": ALL},
        kw={"release": SHOP},
    ),
    Row(
        "hint honoured",
        ("rollback", "progressive", "the alert asks for 'progressive'"),
        alert={"strategy_hint": "progressive"},
        state={"capabilities": ALL},
    ),
    Row(
        "hint outside policy",
        ("rollback", "undo", "the policy does not allow 'blue_green'"),
        alert={"strategy_hint": "blue_green"},
        policy={"strategies": ("undo",)},
        state={"capabilities": ALL},
    ),
    Row(
        "nothing allowed fits",
        ("hold", None, "no allowed strategy fits"),
        policy={"strategies": ("blue_green",), "default_strategy": "blue_green"},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_decision_table(row: Row) -> None:
    ch = row.changes
    policy = Policy.model_validate({"mode": "auto", **ch.get("policy", {})})
    target_state = None if "state" in ch and ch["state"] is None else state(**ch.get("state", {}))
    history = History(**ch.get("history", {}))
    decision = decide(
        alert(**ch.get("alert", {})), policy, target_state, history, now=NOW, registered=REGISTERED, **ch.get("kw", {})
    )
    action, strategy, reason = row.expect
    assert (decision.action, decision.strategy) == (action, strategy), decision.reasons
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.rule in RULES and (decision.rule == "rollback") == (action == "rollback"), decision.rule


def test_decision_carries_its_inputs() -> None:
    decision = decide(alert(), Policy(mode="auto"), state(), History(), now=NOW, registered=REGISTERED)
    assert decision.status == "approved"
    assert (decision.from_revision, decision.to_revision) == (3, 2)
    assert decision.inputs["alert"]["fingerprint"] == "221e4dcea68d407f"
    assert decision.inputs["state"]["current_revision"] == 3
    assert decision.inputs["policy"]["mode"] == "auto"


@pytest.mark.parametrize(
    ("mode", "status"), [("auto", "approved"), ("recommend", "pending_approval"), ("observe", "recorded")]
)
def test_status_follows_mode(mode: str, status: str) -> None:
    decision = decide(alert(), Policy(mode=mode), state(), History(), now=NOW, registered=REGISTERED)
    assert decision.status == status


def test_holds_page() -> None:
    decision = decide(alert(), Policy(rollback_safe=False), state(), History(), now=NOW, registered=REGISTERED)
    assert (decision.action, decision.status, decision.page) == ("hold", "held", True)


def test_engine_is_pure() -> None:
    inputs = (alert(), Policy(mode="auto"), replace(state()), History())
    first = decide(*inputs, now=NOW, registered=REGISTERED)
    assert decide(*inputs, now=NOW, registered=REGISTERED) == first


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("kill switch", "kill_switch"),
        ("no workload", "no_workload"),
        ("a '/' in the name", "bad_target"),
        ("missing data", "missing_data"),
        ("pre-existing alert", "pre_existing"),
        ("pre-existing by the revision's creation", "pre_existing"),
        ("auto rollback with undo", "rollback"),
    ],
)
def test_each_decision_names_the_rule_that_settled_it(name: str, rule: str) -> None:
    """A short fixed code per rule, for dashboards (the metric's ``rule`` label); the reasons stay free text."""
    [row] = [r for r in ROWS if r.name == name]
    ch = row.changes
    policy = Policy.model_validate({"mode": "auto", **ch.get("policy", {})})
    decision = decide(
        alert(**ch.get("alert", {})), policy, state(**ch.get("state", {})), History(**ch.get("history", {})), now=NOW,
        registered=REGISTERED, **ch.get("kw", {}),
    )  # fmt: skip
    assert decision.rule == rule
