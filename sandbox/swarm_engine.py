"""A real, throw-away Docker Swarm on this machine: dockerd in swarm mode inside private namespaces.

Used by the Swarm platform's tests and by ``benchmarks/platform_parity.py``; usable for local demos. The
engine binaries come from Debian's archive, unpacked into ``.cache/swarm-engine`` by
``scripts/swarm-engine.sh`` (nothing is installed on the host); images are built offline from
busybox-static. See ``../shared/contracts/SWARM_LOCAL.md`` for what was observed on this machine kind.

Why the layout below, and what it guarantees:

* ``dockerd`` runs in its own **network, mount and PID namespace** (``unshare``). Its bridge, veths, swarm
  ports (2377/7946/4789), ``/etc/docker`` and ``/run/*`` stay inside; the host sees only the state
  directory and the cgroup directories that runc creates under ``--cgroup-parent``.
* **Crash safety**: the PID namespace's init (tini) is killed when ``unshare`` dies (``--kill-child``), and
  ``unshare`` is killed when the thread that started it dies (``setpriv --pdeathsig``). When init dies the
  kernel kills every process of the namespace (dockerd, containerd, shims, containers) and the namespaces
  go with them. Start the engine from a long-lived thread (the main thread, as pytest and the benchmark
  do): the parent-death signal follows the *thread* that forked.
* What a crash can leave on disk (the state directory and empty cgroup directories) is removed by the
  next :meth:`LocalSwarm.up`: each running engine holds an ``flock`` on its state directory, so any
  directory whose lock can be taken belongs to a dead run.

Needs root (namespaces, mounts, cgroups). Each instance has its own state directory and cgroup parent, so
parallel runs (pytest-xdist workers, several worktrees) do not collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FETCH_SCRIPT = REPO_ROOT / "scripts" / "swarm-engine.sh"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "swarm-engine"
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Prefix of state directories and cgroup parents; the stale-state sweep only touches names with it.
PREFIX = "srswarm-"
#: The busybox applets linked into the test images.
APPLETS = ("sh", "sleep", "echo", "cat", "ls", "env", "hostname", "true", "false", "wget", "nc")
#: A PID 1 that exits at once on SIGTERM, so a task stops without waiting out its grace period.
DEFAULT_CMD = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")


class SwarmEngineError(RuntimeError):
    """The local engine could not be fetched, started or stopped; the message says why and how to fix it."""


@dataclass(frozen=True)
class ImageSpec:
    """A test image: the busybox rootfs with its own tag, environment, labels and command."""

    tag: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    cmd: Sequence[str] = DEFAULT_CMD


def version_images(repository: str = "app", versions: Iterable[str] = ("v1", "v2", "v3")) -> list[ImageSpec]:
    """``app:v1``, ``app:v2``... each saying its version in ``APP_VERSION`` and the ``app.version`` label."""
    return [ImageSpec(f"{repository}:{v}", env={"APP_VERSION": v}, labels={"app.version": v}) for v in versions]


def fetch_engine(cache: Path = DEFAULT_CACHE, *, script: Path = FETCH_SCRIPT) -> Path:
    """Run ``scripts/swarm-engine.sh`` (download + unpack once, then cached) and return the unpacked root."""
    if not script.exists():
        raise SwarmEngineError(
            f"{script} is missing (installed without the repository?): pass engine_root= pointing at an "
            "unpack of Debian's docker.io, containerd, runc, tini and busybox-static"
        )
    proc = subprocess.run(["bash", str(script), str(cache)], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise SwarmEngineError(
            f"{script} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}\n"
            "It needs root and Debian's archive "
            "(apt-get download docker.io containerd runc tini busybox-static)."
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def _rootfs_tar(busybox: Path) -> bytes:
    """A minimal root filesystem: busybox and its applet links, nothing else (a few hundred KB compressed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def _pids_in_cgroups(cgroup_name: str) -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_ROOT.glob(f"*/{cgroup_name}/**/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def _pids_mentioning(text: str) -> set[int]:
    """Processes whose command line contains ``text`` (the state directory): dockerd, containerd, shims."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
    return pids


def _remove_cgroups(cgroup_name: str, attempts: int = 50) -> None:
    """rmdir the cgroup parent in every hierarchy, deepest first; retry while the kernel reaps its tasks."""
    for _ in range(attempts):
        dirs = [d for d in CGROUP_ROOT.glob(f"*/{cgroup_name}") if d.is_dir()]
        if not dirs:
            return
        for top in dirs:
            for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
        time.sleep(0.1)
    left = [str(d) for d in CGROUP_ROOT.glob(f"*/{cgroup_name}")]
    if left:
        raise SwarmEngineError(f"could not remove cgroup directories {left}: processes still in them")


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _rmtree(path: Path, attempts: int = 20) -> None:
    for _ in range(attempts):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    shutil.rmtree(path)


def _sweep_one(state_dir: Path) -> bool:
    """Clean up one state directory if its owner is gone; True if it was stale (and is now removed)."""
    lock_path = state_dir / "lock"
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        # Created but never locked (a crash between mkdir and lock) or half-removed: stale unless brand new.
        if time.time() - state_dir.stat().st_mtime < 60:
            return False
        fd = -1
    if fd >= 0:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False  # a live run holds it
    try:
        _kill(_pids_in_cgroups(state_dir.name) | _pids_mentioning(str(state_dir) + "/"))
        _remove_cgroups(state_dir.name)
        _rmtree(state_dir)
    except (SwarmEngineError, OSError):
        return False  # still busy: the next start tries again
    finally:
        if fd >= 0:
            os.close(fd)
    return True


def sweep_stale(base_dir: Path) -> list[str]:
    """Remove what crashed runs left: state directories nobody holds and cgroup parents without a run."""
    removed: list[str] = []
    if base_dir.is_dir():
        for state_dir in sorted(base_dir.glob(f"{PREFIX}*")):
            if state_dir.is_dir() and _sweep_one(state_dir):
                removed.append(str(state_dir))
    # Cgroup parents whose state directory is gone (e.g. /tmp was cleaned while a run was dead). They may
    # belong to a run with another base_dir, so only the owner's PID in the name says whether it is dead.
    present = {p.name for p in base_dir.glob(f"{PREFIX}*")} if base_dir.is_dir() else set()
    for name in sorted({cg.name for cg in CGROUP_ROOT.glob(f"*/{PREFIX}*") if cg.is_dir()} - present):
        owner = _owner_pid(name)
        if owner is None or _alive(owner):
            continue
        _kill(_pids_in_cgroups(name))
        try:
            _remove_cgroups(name)
        except SwarmEngineError:
            continue  # still busy: the next start tries again
        removed.append(name)
    return removed


def _owner_pid(name: str) -> int | None:
    """The PID in ``srswarm-<pid>-<token>``: the process that started that run."""
    try:
        return int(name.removeprefix(PREFIX).split("-", 1)[0])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalSwarm:
    """One dockerd in swarm mode, started by :meth:`up` and removed without trace by :meth:`down`.

    ``engine_root``: an unpack of the Debian packages (default: fetched into ``.cache/swarm-engine``).
    ``base_dir``: where state directories live (default: ``$TMPDIR/smart-rollback-swarm``); keep it short,
    Unix socket paths are limited to 107 bytes. ``images``: built and imported after ``swarm init``.
    """

    def __init__(
        self,
        *,
        engine_root: Path | None = None,
        base_dir: Path | None = None,
        images: Sequence[ImageSpec] | None = None,
        storage_driver: str = "overlay2",
        start_timeout: float = 30.0,
        fetch: Callable[[], Path] = fetch_engine,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._engine_root = engine_root
        self.base_dir = base_dir or Path(tempfile.gettempdir()) / "smart-rollback-swarm"
        self.images = list(images if images is not None else version_images())
        self.storage_driver = storage_driver
        self.start_timeout = start_timeout
        self._fetch = fetch
        self._log = log or (lambda _msg: None)
        self.state_dir: Path | None = None
        self._lock_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}

    # -- public --------------------------------------------------------------------------------------
    @property
    def socket(self) -> Path:
        if self.state_dir is None:
            raise SwarmEngineError("the engine is not up")
        return self.state_dir / "docker.sock"

    @property
    def base_url(self) -> str:
        """The Engine API address for docker SDK clients: ``unix:///.../docker.sock``."""
        return f"unix://{self.socket}"

    @property
    def cgroup_parent(self) -> str:
        if self.state_dir is None:
            raise SwarmEngineError("the engine is not up")
        return self.state_dir.name

    def api(self, timeout: float = 30.0) -> Any:
        """A low-level ``docker.APIClient`` for this engine (API 1.41, what Debian's dockerd 20.10 speaks)."""
        import docker

        return docker.APIClient(base_url=self.base_url, version="1.41", timeout=timeout)

    def up(self) -> LocalSwarm:
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Stop the engine (TERM, then KILL of the namespace's init) and remove its state and cgroups."""
        started = time.monotonic()
        if self._proc is not None:
            init_pid = self._init_pid()
            if init_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init_pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self._proc.kill()  # --kill-child takes the namespace down with it
                self._proc.wait(timeout=10)
            self._proc = None
        if self.state_dir is not None:
            state_dir = self.state_dir
            _kill(_pids_in_cgroups(state_dir.name) | _pids_mentioning(str(state_dir) + "/"))
            _remove_cgroups(state_dir.name)
            _rmtree(state_dir)
            self.state_dir = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        with contextlib.suppress(OSError):
            self.base_dir.rmdir()  # only if empty: other runs may share it
        self.timings["down"] = time.monotonic() - started

    def __enter__(self) -> LocalSwarm:
        return self.up()

    def __exit__(self, *_exc: object) -> None:
        self.down()

    def import_image(self, spec: ImageSpec, api: Any | None = None) -> None:
        """Build ``spec`` offline (busybox rootfs + Dockerfile-style changes) and import it."""
        api = api or self.api()
        changes = [f"CMD {_json_list(spec.cmd)}"]
        changes += [f"ENV {k}={v}" for k, v in spec.env.items()]
        changes += [f"LABEL {k}={v}" for k, v in spec.labels.items()]
        repository, _, tag = spec.tag.rpartition(":")
        api.import_image_from_data(self._rootfs(), repository=repository, tag=tag, changes=changes)

    # -- internals ------------------------------------------------------------------------------------
    def _rootfs(self) -> bytes:
        if not hasattr(self, "_rootfs_cache"):
            self._rootfs_cache = _rootfs_tar(self._root() / "bin" / "busybox")
        return self._rootfs_cache

    def _root(self) -> Path:
        if self._engine_root is None:
            self._engine_root = self._fetch()
        return self._engine_root

    def _up(self) -> None:
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise SwarmEngineError("the local swarm needs root (namespaces, mounts, cgroups)")
        for tool in ("unshare", "setpriv", "ip"):
            if shutil.which(tool) is None:
                raise SwarmEngineError(f"{tool} is missing: apt-get install util-linux iproute2")
        root = self._root()
        if not (root / "usr" / "sbin" / "dockerd").exists():
            raise SwarmEngineError(f"{root} has no usr/sbin/dockerd; run scripts/swarm-engine.sh")
        self.timings["fetch"] = time.monotonic() - t0
        self.base_dir.mkdir(parents=True, exist_ok=True)
        swept = sweep_stale(self.base_dir)
        if swept:
            self._log(f"swarm engine: removed stale state {swept}")
        state_dir = self.base_dir / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        longest = f"{state_dir}/x/containerd/containerd.sock.ttrpc"
        if len(longest) > 107:
            raise SwarmEngineError(
                f"base_dir {self.base_dir} is too long: containerd's socket {longest} would exceed the "
                "107-byte limit of Unix socket paths; use a shorter base_dir"
            )
        state_dir.mkdir(mode=0o700)
        self.state_dir = state_dir
        # Lock first, then publish under the name the sweep looks for: no other run can see it unlocked.
        lock_fd = os.open(state_dir / "lock.new", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        os.rename(state_dir / "lock.new", state_dir / "lock")
        self._lock_fd = lock_fd
        for sub in ("etc-upper", "etc-work", "data", "x"):
            (state_dir / sub).mkdir()
        dockerd = [
            "dockerd",
            f"--data-root={state_dir}/data",
            f"--exec-root={state_dir}/x",
            f"--host=unix://{state_dir}/docker.sock",
            f"--pidfile={state_dir}/dockerd.pid",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--storage-driver={self.storage_driver}",
            f"--cgroup-parent=/{state_dir.name}",
        ]
        # -n: util-linux would otherwise create /run/mount on the host; the overlay keeps /etc/docker inside.
        script = (
            "set -e; ip link set lo up; "
            "mount -n -t tmpfs -o mode=755 srswarm-run /run; "
            f"mount -n -t overlay srswarm-etc -o lowerdir=/etc,upperdir={state_dir}/etc-upper,"
            f"workdir={state_dir}/etc-work /etc; "
            f"exec {' '.join(dockerd)}"
        )
        env = {
            "PATH": f"{root}/usr/sbin:{root}/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            # dockerd 20.10 reads this: without it the agent tries Docker Hub before every task.
            "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1",
            "HOME": str(state_dir),
        }
        argv = [
            "setpriv",
            "--pdeathsig=KILL",
            "--",
            "unshare",
            "--pid",
            "--fork",
            "--kill-child=KILL",
            "--net",
            "--mount",
            "--propagation=private",
            "--mount-proc",
            "--",
            f"{root}/usr/bin/tini-static",
            "-s",
            "-g",
            "--",
            "/bin/sh",
            "-c",
            script,
        ]
        log = open(state_dir / "dockerd.log", "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()
        t1 = time.monotonic()
        self._wait_api()
        self.timings["start"] = time.monotonic() - t1
        api = self.api()
        t2 = time.monotonic()
        api.init_swarm(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        self.timings["swarm_init"] = time.monotonic() - t2
        t3 = time.monotonic()
        for image in self.images:
            self.import_image(image, api)
        self.timings["images"] = time.monotonic() - t3
        api.close()
        self.timings["up"] = time.monotonic() - t0

    def _wait_api(self) -> None:
        import socket as socket_mod

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise SwarmEngineError(f"dockerd exited ({self._proc.returncode}):\n{self._log_tail()}")
            if self.socket.exists():
                with socket_mod.socket(socket_mod.AF_UNIX) as sock, contextlib.suppress(OSError):
                    sock.settimeout(2)
                    sock.connect(str(self.socket))
                    sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                    status_line = sock.recv(64).split(b"\r\n", 1)[0]
                    if status_line.startswith(b"HTTP/") and b" 200" in status_line:
                        return
            time.sleep(0.05)
        raise SwarmEngineError(f"dockerd did not answer within {self.start_timeout}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        if self.state_dir is None:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join((self.state_dir / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _init_pid(self) -> int | None:
        """The host PID of the namespace's init (tini): the only child of ``unshare``."""
        if self._proc is None:
            return None
        pid = self._proc.pid
        with contextlib.suppress(OSError, ValueError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
        return None


def _json_list(items: Sequence[str]) -> str:
    import json

    return json.dumps(list(items))


@contextlib.contextmanager
def local_swarm(**kwargs: Any) -> Iterator[LocalSwarm]:
    """``with local_swarm() as swarm:`` a running engine, always torn down."""
    swarm = LocalSwarm(**kwargs)
    swarm.up()
    try:
        yield swarm
    finally:
        swarm.down()
