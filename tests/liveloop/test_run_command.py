"""``smart-rollback run`` as a user runs it: headless JSON, and Ctrl-C leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

KEYS = {
    "scenario",
    "strategy",
    "deployed_at",
    "alert_received_at",
    "decision_at",
    "rollback_completed_at",
    "rollbacks",
    "floor_seconds",
}


def _descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to ``pid`` (read from /proc: no extra dependency)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for child, parent in parents.items():
            if parent == current and child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.usefixtures("prometheus_binaries")
def test_interactive_run_prints_json_and_ctrl_c_cleans_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "HOME": str(home)}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", "run", "--json", "--dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the JSON line: printed once the scenario settled
        result = json.loads(line)
        assert set(result) >= KEYS
        assert result["scenario"] == "bad-deploy" and result["strategy"] == "undo" and result["rollbacks"] == 1
        assert result["floor_seconds"] == 4.0
        assert result["deployed_at"] < result["alert_received_at"] <= result["decision_at"]
        assert result["decision_at"] <= result["rollback_completed_at"]
        children = _descendants(proc.pid)
        assert len(children) >= 4  # prometheus, alertmanager, gunicorn (+ worker), exporter
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping" in err
    assert not [pid for pid in children if _alive(pid)]
    # Nothing written outside the run directory (TMPDIR and HOME stayed empty).
    assert not list((tmp_path / "tmp").iterdir())
    assert not list(home.iterdir())
    assert {p.name for p in tmp_path.iterdir()} == {"run", "tmp", "home"}
