"""The live loop's supervisor: a failed start names the part and its log; stopping kills whole process groups."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from reactor.liveloop.processes import StartError, Supervisor, free_port


def test_a_part_that_exits_while_starting_is_named_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    try:
        child = sup.start("exporter", [sys.executable, "-c", "print('bad config: targets.0'); raise SystemExit(3)"])
        with pytest.raises(StartError) as info:
            sup.wait_ready(child, f"http://127.0.0.1:{free_port()}/metrics", timeout=10)
    finally:
        sup.stop_all()
    message = str(info.value)
    assert "exporter exited with code 3" in message
    assert str(tmp_path / "logs" / "exporter.log") in message and "bad config: targets.0" in message


def test_stop_all_kills_the_group_including_grandchildren(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    child = sup.start("gunicorn-like", [sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    sup.stop_all(timeout=1)
    assert child.process.poll() is not None
    time.sleep(0.2)
    stat = Path(f"/proc/{grandchild}/stat")
    # Gone, or a zombie waiting for whoever inherited it to reap it: either way no longer running.
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
