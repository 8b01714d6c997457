"""The live loop's scenarios: what is deployed, how the faulty revision behaves, what the loop must do.

Each scenario deploys onto the sandbox's demo release (sandbox/seed.py) the way a pipeline would (config
snapshot, new image, deploy registered with the reactor) and states what a correct loop ends with: the
strategy, the number of rollbacks and the cluster state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.resources import BY_KIND
from sandbox.seed import REGISTRY, roll, snapshot
from sandbox.simulator import Behaviour
from sandbox.store import Store

NS = "shop"
FAULTY = Behaviour(error_ratio=0.3, latency=0.4)
CRASHING = Behaviour(error_ratio=0.8, latency=0.05)


def _image(store: Store, name: str) -> str:
    obj = store.get(BY_KIND["Deployment"], NS, name)
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def _tag(store: Store, name: str) -> str:
    return _image(store, name).rpartition(":")[2]


@dataclass(frozen=True)
class Deploy:
    """What a scenario deployed: the workload written, the new revision's tag and the one it replaced."""

    workload: str
    revision: str
    previous: str


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The target the exporter scores and the reactor rolls back.
    target: str
    #: The strategy the engine must choose (None: no rollback expected).
    strategy: str | None
    rollbacks: int
    description: str
    deploy: Callable[[Store], Deploy]
    #: image tag (or ``workload:*``) -> behaviour, set on the simulator before the deploy.
    faults: dict[str, Behaviour]
    #: The rollback alert that should fire (its ``for:`` enters the floor).
    alert: str | None
    #: Final cluster state: ``(ok, what was found)``.
    check: Callable[[Store], tuple[bool, str]]
    #: Seconds to keep watching after the rollback (or after the deploy, when none is expected).
    settle: float = 3.0
    #: Deploy the same revision again once the rollback recovered (a pipeline retrying a flapping check).
    redeploy: bool = False


def _roll(store: Store, workload: str, version: str, **kw: object) -> Deploy:
    previous = _tag(store, workload)
    snapshot(store, NS, workload)
    roll(store, NS, workload, f"{REGISTRY}/{workload.split('-')[0]}:{version}", change_cause=f"release {version}",
         **kw)  # type: ignore[arg-type]  # fmt: skip
    return Deploy(workload, version, previous)


def _bad_deploy(store: Store) -> Deploy:
    return _roll(store, "payments", "1.6.0", config={"payments-config": {"TIMEOUT_MS": "50"}})


def redeploy(store: Store, deploy: Deploy) -> Deploy:
    """Deploy ``deploy``'s revision again (the config edit included), as a retried pipeline does."""
    return _roll(store, deploy.workload, deploy.revision, config={"payments-config": {"TIMEOUT_MS": "50"}})


def _healthy_deploy(store: Store) -> Deploy:
    return _roll(store, "payments", "1.6.1", config={"payments-config": {"TIMEOUT_MS": "1000"}})


def _canary(store: Store) -> Deploy:
    return _roll(store, "frontend-canary", "2.3.0")


def _component(store: Store) -> Deploy:
    return _roll(store, "checkout", "3.3.0", config={"checkout-config": {"RETRIES": "0"}})


def _blue_green(store: Store) -> Deploy:
    """Deploy 2.5.0 on the idle colour (blue), then switch the Service to it."""
    previous = _tag(store, "cart-green")
    roll(store, NS, "cart-blue", f"{REGISTRY}/cart:2.5.0", change_cause="release 2.5.0")
    service = store.get(BY_KIND["Service"], NS, "cart")
    service["spec"]["selector"]["color"] = "blue"
    store.replace(BY_KIND["Service"], NS, "cart", service)
    return Deploy("cart-blue", "2.5.0", previous)


def _check_image(
    name: str, tag: str, config: tuple[str, str, str] | None = None
) -> Callable[[Store], tuple[bool, str]]:
    def check(store: Store) -> tuple[bool, str]:
        found = _tag(store, name)
        ok = found == tag
        what = f"{name} runs {found} (want {tag})"
        if config is not None:
            cm_name, key, want = config
            value = (store.get(BY_KIND["ConfigMap"], NS, cm_name).get("data") or {}).get(key)
            ok = ok and value == want
            what += f"; {cm_name}.{key}={value} (want {want})"
        return ok, what

    return check


def _check_canary(store: Store) -> tuple[bool, str]:
    vs = store.get(BY_KIND["VirtualService"], NS, "frontend")
    weights = {r["destination"]["subset"]: r.get("weight", 0) for r in vs["spec"]["http"][0]["route"]}
    return weights.get("canary") == 0 and weights.get("stable") == 100, f"frontend weights {weights} (want canary 0)"


def _check_green(store: Store) -> tuple[bool, str]:
    color = store.get(BY_KIND["Service"], NS, "cart")["spec"]["selector"].get("color")
    return color == "green", f"Service cart selects {color} (want green, running {_tag(store, 'cart-green')})"


def _check_partial(store: Store) -> tuple[bool, str]:
    ok1, what1 = _check_image("checkout", "3.2.0", ("checkout-config", "RETRIES", "5"))(store)
    ok2, what2 = _check_image("payments", "1.5.0")(store)
    ok3, what3 = _check_image("frontend", "2.1.0")(store)
    return ok1 and ok2 and ok3, f"{what1}; {what2}, {what3} (untouched)"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "bad-deploy",
            "payments",
            "undo",
            1,
            "payments 1.6.0 (and a config edit) answers 30 % errors at 400 ms: undo to 1.5.0 and its config",
            _bad_deploy,
            {"1.6.0": FAULTY},
            "SmartRollbackHealthLow",
            _check_image("payments", "1.5.0", ("payments-config", "TIMEOUT_MS", "1200")),
        ),
        Scenario(
            "canary-regression",
            "frontend",
            "progressive",
            1,
            "frontend canary 2.3.0 takes 60 % and regresses: traffic shifted back 50 -> 20 -> 0",
            _canary,
            {"2.3.0": FAULTY},
            "SmartRollbackHealthLow",
            _check_canary,
        ),
        Scenario(
            "critical-crash",
            "cart",
            "blue_green",
            1,
            "cart 2.5.0 on blue crashes (80 % errors, a critical metric): switch back to green",
            _blue_green,
            {"2.5.0": CRASHING},
            "SmartRollbackCriticalMetricFailed",
            _check_green,
        ),
        Scenario(
            "component-failure",
            "checkout",
            "partial",
            1,
            "checkout 3.3.0 of release shop fails: roll back checkout only; payments and frontend stay",
            _component,
            {"3.3.0": FAULTY},
            "SmartRollbackHealthLow",
            _check_partial,
        ),
        Scenario(
            "healthy-deploy",
            "payments",
            None,
            0,
            "payments 1.6.1 behaves like 1.5.0: nothing is rolled back",
            _healthy_deploy,
            {},
            None,
            _check_image("payments", "1.6.1", ("payments-config", "TIMEOUT_MS", "1000")),
            settle=12.0,
        ),
        Scenario(
            "flapping-metric",
            "payments",
            "undo",
            1,
            "payments 1.6.0's errors flap on and off every 3 s; after the undo the pipeline retries the deploy: "
            "the alert fires again and the cooldown holds (no second rollback)",
            _bad_deploy,
            {"1.6.0": Behaviour(error_ratio=0.3, latency=0.4, flap=3.0)},
            "SmartRollbackHealthLow",
            _check_image("payments", "1.6.0", ("payments-config", "TIMEOUT_MS", "50")),
            settle=12.0,
            redeploy=True,
        ),
    )
}
