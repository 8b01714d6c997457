"""The dashboards are importable as shipped: schema 39, inputs and requirements, the datasource variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

DASHBOARDS = sorted((ROOT / "grafana_dashboards").glob("*.json"))


def test_the_three_dashboards_and_the_provisioning_files_exist() -> None:
    assert {p.stem for p in DASHBOARDS} == {"deployment-health", "rollback-activity", "canary-vs-baseline"}
    for name in ("dashboards", "datasources"):
        assert (
            yaml.safe_load((ROOT / "grafana_dashboards" / "provisioning" / f"{name}.yml").read_text())["apiVersion"]
            == 1
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_importable(path: Path) -> None:
    board: dict[str, Any] = json.loads(path.read_text())
    assert board["schemaVersion"] == 39 and board["id"] is None and board["uid"].startswith("smart-rollback")
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    ids, cells = set(), set()
    for panel in board["panels"]:
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] == "row":
            continue
        required_panel = ("panel", panel["type"])
        assert required_panel in required, f"{panel['type']} missing from __requires"
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"].strip()
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${datasource}"
            assert var["query"]["query"].startswith("label_values(")
