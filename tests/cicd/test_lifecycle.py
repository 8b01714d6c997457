"""A registered deployment from start to verdict, through the HTTP API, the store and the job worker, on
SQLite and the real PostgreSQL. Time is the test's: the worker runs a job only when the clock says it is due."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.store import Store, make_engine, migrate
from strategies import PermanentError, TargetRef, TemporaryError
from tests.cicd.conftest import (
    AUTH,
    REF,
    TARGET,
    Clock,
    Cluster,
    alert_payload,
    build,
    decisions,
    register,
    rt,
    seeded_cluster,
    send,
    view,
)


def soak_past(app: Any, clock: Clock, seconds: float = 601) -> None:
    clock.now += seconds
    rt(app).worker.drain()


def test_a_healthy_soak_makes_the_revision_the_last_known_good(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, db_url, cluster, clock)
    deployed = register(app, "shop:3", pipeline_url="https://ci.example/run/1")
    assert deployed["status"] == "in_progress"
    assert deployed["progress"]["phase"] == "soaking"
    assert deployed["progress"]["soak_seconds_left"] == 600
    rt(app).worker.drain()  # the record job: nothing to record on this platform
    clock.now += 300
    rt(app).worker.drain()
    assert view(app, deployed["id"])["progress"]["message"] == "soaking: 5m left, no rollback-worthy alert so far"

    soak_past(app, clock, 301)
    done = view(app, deployed["id"])
    assert (done["status"], done["verdict_by"]) == ("healthy", "reactor")
    assert done["verdict_reason"] == "no rollback and no rollback-worthy alert during the 10m soak"
    marks = app.test_client().get("/api/v1/marks", query_string={"target": TARGET}, headers=AUTH).json
    assert {(m["revision"], m["verdict"]) for m in marks["marks"]} == {("shop:3", "good"), ("checkout-3", "good")}
    assert marks["last_good"]["revision"] in ("shop:3", "checkout-3")

    # The next deploy is bad; the platform would pick its stable revision 2, the reactor returns to 3.
    cluster.roll_out(REF, "shop:4")
    bad = register(app, "shop:4")
    clock.now += 30
    send(app, alert_payload(clock.now - 5))
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["status"], decision["to_revision"]) == ("succeeded", 3)
    assert "revision 3 is the last known good" in decision["reasons"]
    assert view(app, bad["id"])["status"] == "rolled_back"


def test_a_rollback_gives_the_verdict_at_once_and_marks_the_revision_bad(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, db_url, cluster, clock)
    deployed = register(app, "shop:3")
    clock.now += 60
    send(app, alert_payload(clock.now - 10))
    assert view(app, deployed["id"])["progress"]["phase"] == "deciding"
    rt(app).worker.drain()
    done = view(app, deployed["id"])
    [decision] = decisions(app)
    assert done["status"] == "rolled_back", "no need to wait for the soak to end"
    assert done["progress"]["decision_id"] == decision["id"]
    assert done["verdict_reason"].startswith(f"rolled back to revision 2 by decision {decision['id']}")
    marks = rt(app).store.revision_marks(TARGET)
    assert {(m["revision"], m["verdict"]) for m in marks} == {("shop:3", "bad"), ("checkout-3", "bad")}
    trail = [a["message"] for a in rt(app).store.audit_trail(target=TARGET)]
    assert any(m.startswith(f"deployment {deployed['id']} of revision shop:3 is rolled_back") for m in trail)
    soak_past(app, clock)
    assert view(app, deployed["id"])["status"] == "rolled_back", "the soak job leaves a verdict alone"

    # A person who finds it was a false alarm clears both marks: the platform revision comes from the decision.
    cleared = app.test_client().post(
        f"/api/v1/deployments/{deployed['id']}/mark", json={"verdict": "good", "reason": "false alarm"}, headers=AUTH
    )
    assert cleared.status_code == 200
    newest: dict[str, str] = {}
    for mark in rt(app).store.revision_marks(TARGET):  # newest first
        newest.setdefault(mark["revision"], mark["verdict"])
    assert newest == {"shop:3": "good", "checkout-3": "good"}


def test_a_fix_rolls_forward_while_the_old_alert_still_fires(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    """SAM #716 / copilot-cli #4512: the alert of the bad revision is still firing when its fix deploys."""
    app = build(app_factory, db_url, cluster, clock, **{"policies.defaults.mode": "observe"})
    broken = register(app, "shop:3")
    clock.now += 60
    old_alert = alert_payload(clock.now - 30, name="ErrorRateHigh")
    send(app, old_alert)
    rt(app).worker.drain()
    assert view(app, broken["id"])["status"] == "bad", "observe mode: the reactor would have rolled it back"

    clock.now += 120
    cluster.roll_out(REF, "shop:4")
    fix = register(app, "shop:4")
    clock.now += 30
    assert send(app, old_alert)["duplicate"] == 1, "Alertmanager repeats the old alert: the same occurrence"
    # Another rule's alert that began before the fix, first delivered after it (group_wait, repeat_interval).
    send(app, alert_payload(clock.now - 90, name="LatencyHigh"))
    rt(app).worker.drain()
    latest = decisions(app)[0]
    assert latest["action"] == "ignore" and "pre-existing alert" in latest["reasons"][0]
    soak_past(app, clock)
    done = view(app, fix["id"])
    assert done["status"] == "healthy", done
    assert [d["action"] for d in decisions(app)] == ["ignore", "rollback"], "nothing rolled the fix back"


def test_a_new_alert_after_the_fix_rolls_it_back(app_factory: Any, db_url: str, clock: Clock, cluster: Cluster) -> None:
    app = build(app_factory, db_url, cluster, clock)
    send(app, alert_payload(clock.now - 600, name="ErrorRateHigh"))  # firing since before any deploy
    fix = register(app, "shop:3")
    rt(app).worker.drain()
    assert decisions(app)[0]["action"] == "ignore"
    clock.now += 120
    send(app, alert_payload(clock.now - 10, name="ErrorRateHigh", fingerprint="00000000000000ff"))
    rt(app).worker.drain()
    latest = decisions(app)[0]
    assert (latest["action"], latest["status"]) == ("rollback", "succeeded")
    assert view(app, fix["id"])["status"] == "rolled_back"


def test_missing_data_at_the_end_of_the_soak_is_insufficient(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, db_url, cluster, clock)
    deployed = register(app, "shop:3")
    clock.now += 10
    send(app, alert_payload(clock.now, name="HealthDataMissing", failure_kind="insufficient_data"))
    rt(app).worker.drain()
    assert decisions(app)[0]["action"] == "ignore", "missing data never rolls back"
    assert view(app, deployed["id"])["progress"]["phase"] == "soaking"
    soak_past(app, clock)
    done = view(app, deployed["id"])
    assert done["status"] == "insufficient_data"
    assert "'HealthDataMissing' reports missing data" in done["verdict_reason"]
    assert rt(app).store.revision_marks(TARGET) == [], "no verdict on the revision itself"


def test_missing_data_that_recovered_during_the_soak_is_healthy(
    app_factory: Any, sqlite_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, sqlite_url, cluster, clock)
    deployed = register(app, "shop:3")
    clock.now += 10
    missing = alert_payload(clock.now, name="HealthDataMissing", failure_kind="insufficient_data")
    send(app, missing)
    clock.now += 100
    send(app, alert_payload(clock.now - 100, name="HealthDataMissing", failure_kind="insufficient_data",
                            fingerprint=missing["alerts"][0]["fingerprint"], status="resolved"))  # fmt: skip
    soak_past(app, clock)
    assert view(app, deployed["id"])["status"] == "healthy"


def test_modes_observe_recommend_and_approvals(app_factory: Any, db_url: str, clock: Clock, cluster: Cluster) -> None:
    app = build(app_factory, db_url, cluster, clock, **{"policies.defaults.mode": "recommend"})
    deployed = register(app, "shop:3")
    clock.now += 30
    send(app, alert_payload(clock.now - 5))
    rt(app).worker.drain()
    [decision] = decisions(app)
    waiting = view(app, deployed["id"])
    assert waiting["progress"] == {"phase": "awaiting_approval", "decision_id": decision["id"],
                                   "message": f"decision {decision['id']} waits for a person to approve or reject "
                                              "the rollback", "soak_seconds_left": 570.0}  # fmt: skip
    soak_past(app, clock)
    assert view(app, deployed["id"])["status"] == "in_progress", "a person has to decide first"
    client = app.test_client()
    assert (
        client.post(f"/api/v1/decisions/{decision['id']}/reject", json={"reason": "flaky"}, headers=AUTH).status_code
        == 200
    )
    clock.now += 6
    rt(app).worker.drain()
    assert view(app, deployed["id"])["status"] == "healthy", "rejected: the alert was not the deploy's fault"

    second = register(app, "shop:4")
    clock.now += 30
    send(app, alert_payload(clock.now - 5, name="Other"))
    rt(app).worker.drain()
    pending = decisions(app)[0]
    assert client.post(f"/api/v1/decisions/{pending['id']}/approve", headers=AUTH).status_code == 202
    rt(app).worker.drain()
    assert view(app, second["id"])["status"] == "rolled_back"


def test_a_newer_deploy_supersedes_one_still_soaking(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, db_url, cluster, clock)
    first = register(app, "shop:3")
    clock.now += 60
    second = register(app, "shop:4")
    done = view(app, first["id"])
    assert done["status"] == "superseded"
    assert done["verdict_reason"] == f"superseded by deployment {second['id']} of revision shop:4"
    soak_past(app, clock, 600)
    assert view(app, first["id"])["status"] == "superseded"
    assert view(app, second["id"])["status"] == "healthy"


def test_the_soak_survives_a_restart(app_factory: Any, db_url: str, clock: Clock, cluster: Cluster) -> None:
    """The soak is a job in the database: a reactor started later (another process, replica) finishes it."""
    first = build(app_factory, db_url, cluster, clock)
    deployed = register(first, "shop:3")
    rt(first).close()
    clock.now += 700
    second = build(app_factory, db_url, cluster, clock)
    assert rt(second).worker.drain() == 2, "the record job and the soak job"
    assert view(second, deployed["id"])["status"] == "healthy"


def test_a_bad_mark_keeps_the_engine_off_that_revision(
    app_factory: Any, db_url: str, clock: Clock, cluster: Cluster
) -> None:
    app = build(app_factory, db_url, cluster, clock)
    client = app.test_client()
    mark = {
        "target": TARGET,
        "revision": "shop:2",
        "verdict": "bad",
        "reason": "INC-7: corrupts carts",
        "actor": "alice",
    }
    marked = client.post("/api/v1/marks", json=mark, headers=AUTH)
    assert marked.status_code == 201 and marked.json["deployments"] == []
    register(app, "shop:3")
    clock.now += 30
    send(app, alert_payload(clock.now - 5))
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["status"], decision["to_revision"]) == ("succeeded", 1), "stable revision 2 is marked bad"
    assert "revision 2 is marked bad: skipped" in decision["reasons"]
    [entry] = [a for a in rt(app).store.audit_trail(target=TARGET) if a["kind"] == "mark" and "alice" in a["message"]]
    assert entry["message"] == "revision shop:2 marked bad by alice: INC-7: corrupts carts"
    assert entry["data"]["actor"] == "alice"


def test_people_mark_deployments(app_factory: Any, db_url: str, clock: Clock, cluster: Cluster) -> None:
    app = build(app_factory, db_url, cluster, clock)
    client = app.test_client()
    deployed = register(app, "shop:3")
    verdict = {"verdict": "good", "reason": "verified by QA"}
    good = client.post(f"/api/v1/deployments/{deployed['id']}/mark", json=verdict, headers=AUTH)
    assert good.status_code == 200
    assert (good.json["status"], good.json["verdict_by"]) == ("healthy", "token")
    assert good.json["verdict_reason"] == "marked good by token: verified by QA"
    assert rt(app).store.revision_marks(TARGET)[0]["revision"] == "shop:3"
    soak_past(app, clock)
    assert view(app, deployed["id"])["verdict_reason"] == "marked good by token: verified by QA"

    later = register(app, "shop:4")
    mark = {"target": TARGET, "revision": "shop:4", "verdict": "bad", "reason": "wrong config", "actor": "bob"}
    by_revision = client.post("/api/v1/marks", json=mark, headers=AUTH)
    assert by_revision.json["deployments"] == [later["id"]]
    assert by_revision.json["last_good"]["revision"] == "shop:3"
    done = view(app, later["id"])
    assert (done["status"], done["verdict_by"]) == ("bad", "bob")
    prefix = f"deployment {later['id']} of revision shop:4 is bad"
    [audit] = [a for a in rt(app).store.audit_trail(target=TARGET) if a["message"].startswith(prefix)]
    assert audit["data"]["authenticated_as"] == "token" and audit["data"]["by"] == "bob"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v1/marks", {"target": TARGET, "revision": "1", "verdict": "meh", "reason": "x"}, "'good' or 'bad'"),
        ("/api/v1/marks", {"target": TARGET, "revision": "1", "verdict": "bad"}, "reason is required"),
        ("/api/v1/marks", {"target": TARGET, "verdict": "bad", "reason": "x"}, "revision is required"),
        ("/api/v1/marks", {"target": "checkout", "revision": "1", "verdict": "bad", "reason": "x"}, "platform/cluster"),
        ("/api/v1/deployments/nope/mark", {"verdict": "good", "reason": "x"}, "no deployment 'nope'"),
        ("/api/v1/deployments", {"target": TARGET, "revision": "1", "context": {"a": {"b": 1}}}, "context.a must be"),
        ("/api/v1/deployments", {"revision": "1", "source": "argocd"}, "subscribe the Argo CD application"),
    ],
)
def test_validation(app_factory: Any, sqlite_url: str, clock: Clock, cluster: Cluster, path: str, body: dict,
                    message: str) -> None:  # fmt: skip
    app = build(app_factory, sqlite_url, cluster, clock)
    response = app.test_client().post(path, json=body, headers=AUTH)
    assert response.status_code in (400, 404) and message in response.json["error"], response.json


def test_list_and_query_validation(app_factory: Any, sqlite_url: str, clock: Clock, cluster: Cluster) -> None:
    app = build(app_factory, sqlite_url, cluster, clock)
    client = app.test_client()
    ids = []
    for n in (3, 4, 5):
        ids.append(register(app, f"shop:{n}")["id"])
        clock.now += 1
    listed = client.get("/api/v1/deployments", query_string={"target": TARGET, "limit": 2}, headers=AUTH).json
    assert [d["id"] for d in listed["deployments"]] == [ids[2], ids[1]]
    rest = client.get("/api/v1/deployments", query_string={"target": TARGET, "before": listed["next_before"]},
                      headers=AUTH).json  # fmt: skip
    assert [d["id"] for d in rest["deployments"]] == [ids[0]]
    only = client.get("/api/v1/deployments", query_string={"status": "superseded"}, headers=AUTH).json
    assert len(only["deployments"]) == 2
    for query, message in [({"status": "nope"}, "status must be one of"), ({"limit": 0}, "between 1 and 500")]:
        response = client.get("/api/v1/deployments", query_string=query, headers=AUTH)
        assert response.status_code == 400 and message in response.json["error"]
    assert client.get("/api/v1/marks", headers=AUTH).status_code == 400
    for wait in ("soon", "-1", "nan", "inf"):
        response = client.get(f"/api/v1/deployments/{ids[0]}", query_string={"wait": wait}, headers=AUTH)
        assert response.status_code == 400, wait


def test_registration_is_idempotent(app_factory: Any, db_url: str, clock: Clock, cluster: Cluster) -> None:
    app = build(app_factory, db_url, cluster, clock)
    first = register(app, "shop:3", headers={"Idempotency-Key": "run-42-attempt-1"})
    again = register(app, "shop:3", headers={"Idempotency-Key": "run-42-attempt-1"})
    assert (again["id"], again["duplicate"], first["duplicate"]) == (first["id"], True, False)
    by_body = register(app, "shop:3", idempotency_key="argocd:checkout:abc:2026-11-27T10:00:00Z")
    assert register(app, "shop:3", idempotency_key="argocd:checkout:abc:2026-11-27T10:00:00Z")["id"] == by_body["id"]
    assert len(rt(app).store.list_deployments(target=TARGET)) == 2
    stored = rt(app).store.get_deployment(first["id"])
    assert stored is not None and stored["idempotency_key"] != "run-42-attempt-1", "kept hashed"
    assert "idempotency_key" not in first


@pytest.mark.postgres
def test_concurrent_retries_register_once(app_factory: Any, postgres_url: str, clock: Clock, cluster: Cluster) -> None:
    """Two processes receiving the same retried request at once (PostgreSQL: no single writer)."""
    import threading

    app = build(app_factory, postgres_url, cluster, clock)
    store = rt(app).store
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(store.register_deployment({"target": TARGET, "revision": "7"}, idempotency_key="same"))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["id"] for r in results}) == 1
    assert sorted(r["duplicate"] for r in results) == [False, True, True, True]


class RecordingCluster(Cluster):
    """A platform keeping its own revision records (like Swarm), with faults to inject."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[TargetRef] = []
        self.failures: list[Exception] = []

    def record(self, target: TargetRef) -> int:
        if self.failures:
            raise self.failures.pop(0)
        self.recorded.append(target)
        return int(self.describe(target).current_revision or 0)


def test_platforms_that_record_revisions_are_asked_at_registration(app_factory: Any, db_url: str, clock: Clock) -> None:
    cluster = RecordingCluster(targets={TARGET: seeded_cluster().describe(REF)})
    app = build(app_factory, db_url, cluster, clock)
    cluster.failures = [TemporaryError("engine busy", delay=1)]
    deployed = register(app, "shop:3")
    rt(app).worker.drain()
    assert cluster.recorded == [], "a temporary error is retried with backoff"
    clock.now += 2
    rt(app).worker.drain()
    assert cluster.recorded == [REF]
    assert rt(app).store.get_deployment(deployed["id"])["platform_revision"] == 3
    messages = [a["message"] for a in rt(app).store.audit_trail(target=TARGET)]
    assert f"platform kubernetes recorded revision 3 of {TARGET} for deployment {deployed['id']}" in messages

    cluster.failures = [PermanentError("no such service")]
    other = register(app, "shop:4")
    rt(app).worker.drain()
    assert rt(app).store.get_deployment(other["id"])["platform_revision"] is None
    assert any("could not record the platform's revision" in m and "no such service" in m
               for m in (a["message"] for a in rt(app).store.audit_trail(target=TARGET)))  # fmt: skip


def test_the_revision_running_at_registration_gets_no_mark_of_the_deploy(
    app_factory: Any, db_url: str, clock: Clock
) -> None:
    """Pipelines register before they roll out (docs/cicd.md), so the revision a platform records at
    registration is the one being replaced: neither the verdict nor a person's mark may land on it."""
    cluster = RecordingCluster(targets={TARGET: seeded_cluster().describe(REF)})
    app = build(app_factory, db_url, cluster, clock)
    client = app.test_client()

    def marks() -> set[tuple[str, str]]:
        found = client.get("/api/v1/marks", query_string={"target": TARGET}, headers=AUTH).json["marks"]
        return {(m["revision"], m["verdict"]) for m in found}

    first = register(app, "shop:4")
    rt(app).worker.drain()  # the record job runs at once, while revision 3 still runs
    assert rt(app).store.get_deployment(first["id"])["platform_revision"] == 3
    cluster.roll_out(REF, "shop:4")
    soak_past(app, clock)
    assert view(app, first["id"])["status"] == "healthy"
    assert marks() == {("shop:4", "good"), ("checkout-4", "good")}, "the revision that ran the soak, not 3"

    second = register(app, "shop:5")
    rt(app).worker.drain()  # records revision 4, the last good one
    cluster.roll_out(REF, "shop:5")
    marked = client.post(f"/api/v1/deployments/{second['id']}/mark", json={"verdict": "bad", "reason": "INC-9"},
                         headers=AUTH)  # fmt: skip
    assert marked.status_code == 200 and marked.json["status"] == "bad"
    assert ("shop:5", "bad") in marks()
    assert not {("4", "bad"), ("checkout-4", "bad")} & marks(), "the revision it replaced is still good"

    clock.now += 30
    send(app, alert_payload(clock.now - 5))
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["status"], decision["to_revision"]) == ("succeeded", 4)


def test_the_soak_of_each_target_follows_its_policy(app_factory: Any, sqlite_url: str, clock: Clock) -> None:
    cluster = seeded_cluster()
    slow = "kubernetes/prod/payments/ledger"
    app = build(app_factory, sqlite_url, cluster, clock,
                **{"policies.targets": [{"match": "*/payments/*", "soak_seconds": 3600}]})  # fmt: skip
    quick, careful = register(app, "shop:3"), register(app, "v9", target=slow)
    assert careful["progress"]["soak_seconds_left"] == 3600
    soak_past(app, clock, 601)
    assert (view(app, quick["id"])["status"], view(app, careful["id"])["status"]) == ("healthy", "in_progress")


def test_long_poll_answers_when_the_state_changes(
    app_factory: Any, sqlite_url: str, clock: Clock, cluster: Cluster
) -> None:
    import threading

    app = build(app_factory, sqlite_url, cluster, clock, **{"deployments.max_wait_seconds": 10})
    deployed = register(app, "shop:3")
    seen = view(app, deployed["id"])["state"]
    assert view(app, deployed["id"], wait=0.2)["state"] == seen, "nothing changed: answered after the wait"
    assert view(app, deployed["id"], wait=5, since="in_progress:older:")["state"] == seen, "changed: at once"

    def rollback_soon() -> None:
        clock.now += 30
        send(app, alert_payload(clock.now - 5))
        rt(app).worker.drain()

    timer = threading.Timer(0.3, rollback_soon)
    timer.start()
    try:
        answer = view(app, deployed["id"], wait=9, since=seen)
    finally:
        timer.join()
    assert answer["state"] != seen
    assert answer["progress"]["phase"] in ("deciding", "rolling_back", "rolled_back")


def test_long_polls_never_take_every_request_thread(
    app_factory: Any, sqlite_url: str, clock: Clock, cluster: Cluster
) -> None:
    import threading

    app = build(app_factory, sqlite_url, cluster, clock, **{"server.threads": 2, "deployments.max_wait_seconds": 3})
    deployed = register(app, "shop:3")
    holder = threading.Thread(target=view, args=(app, deployed["id"]), kwargs={"wait": 2})
    holder.start()
    try:
        import time

        time.sleep(0.3)
        response = app.test_client().get(f"/api/v1/deployments/{deployed['id']}?wait=2", headers=AUTH)
        assert response.headers.get("Retry-After") == "1", "the only waiting slot is taken: answered at once"
    finally:
        holder.join()


def test_upgrading_from_0001_schedules_the_soak_of_waiting_deployments(db_url: str, clock: Clock) -> None:
    engine = make_engine(db_url)
    assert migrate(engine, "0001") == "0001"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO deployments (id, target, revision, started_at, status) "
            f"VALUES ('old1', '{TARGET}', '6', {clock.now - 7200}, 'in_progress'), "
            f"('old2', '{TARGET}', '5', {clock.now - 9000}, 'healthy')"
        )
    assert migrate(engine) == "0002"
    store = Store(engine, clock=clock)
    job = store.claim_job("me", 30)
    assert job is not None and (job.key, job.kind) == ("deployment:old1:soak", "soak")
    assert store.claim_job("me", 30) is None
    store.close()
