"""The Ray executor on a REAL local Ray cluster: a head and a second node started with ``ray start``, bound to
127.0.0.1 only (checked: every listening socket of the cluster and of the driver), one CPU each. A sweep sent
to it gives the rows of a local run (same threads), and survives a Ray worker killed while it runs a cell: the
cell is retried (or recorded as failed), no row is lost or half-written. Both nodes are stopped in a finally
block (their process groups killed), even when the test fails."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kd_lab import results, sweep

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
name = "ray-tiny"
epochs = 2
batch_size = 50
test_size = 200
validation = 200
seeds = [0, 1]

[grid]
labeled = [300]

[[arms]]
label = "scratch"
method = "scratch"

[[arms]]
label = "kd"
method = "kd"
"""

# `ray start` turns --node-ip-address 127.0.0.1 into the machine's outward address (resolve_ip_for_localhost) and
# then listens on every interface. Kept as 127.0.0.1, every server of the node binds to loopback only; the
# variable, set for the node's own processes after the import, makes them pick 127.0.0.1 as well.
RAY_START = """\
import os, sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""
LOOPBACK_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(n: int = 40) -> int:
    """The first of ``n`` consecutive ports that are free on 127.0.0.1."""
    for _ in range(50):
        base = free_port()
        if base + n < 65536 and all(_is_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("no range of free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_node(temp: Path, head_port: int, head: bool) -> int:
    """Start one node with `ray start` in a new session; returns the session id (= its process group)."""
    workers = free_range()
    args = [sys.executable, "-c", RAY_START, "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
            "--num-gpus", "0", "--disable-usage-stats", "--object-store-memory", str(100 * 2**20),
            "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--min-worker-port", str(workers), "--max-worker-port", str(workers + 39)]
    args += (["--head", "--port", str(head_port), "--include-dashboard=false", "--temp-dir", str(temp)] if head
             else ["--address", f"127.0.0.1:{head_port}"])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}   # RAY_START sets it
    proc = subprocess.Popen(args, env={**env, "RAY_USAGE_STATS_ENABLED": "0"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    return proc.pid


def session_pids(sessions) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) in sessions:
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def listening_addresses(pids) -> set[str]:
    """The local addresses of the TCP sockets in LISTEN state that the processes ``pids`` hold."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:                 # 0A: LISTEN
                found.add(_address(fields[1].split(":")[0]))
    return found


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]         # little-endian 32-bit words
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, words[0])
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or address.startswith("::ffff:127.")


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node on 127.0.0.1, one CPU each; yields (address, session ids)."""
    temp = Path(tempfile.mkdtemp(prefix="kdr", dir="/tmp"))                # short: Ray's socket paths are limited
    port, sessions = free_port(), []
    try:
        sessions.append(start_node(temp, port, head=True))
        sessions.append(start_node(temp, port, head=False))
        yield f"127.0.0.1:{port}", set(sessions)
    finally:
        for sid in sessions:
            try:
                os.killpg(sid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        while time.time() < deadline and session_pids(set(sessions)):
            time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_on_a_ray_cluster_gives_the_local_rows_and_survives_a_killed_worker(cluster, tmp_path):
    address, sessions = cluster
    spec_path = tmp_path / "ray-tiny.toml"
    spec_path.write_text(SPEC)
    local = {r["cell_key"]: r for r in sweep.run_sweep(spec_path, device="cpu", threads=1,
                                                       out=tmp_path / "local.csv", progress=False)}
    out_dir = tmp_path / "ray"
    args = [sys.executable, "-m", "kd_lab", "sweep", str(spec_path), "--executor", "ray", "--address", address,
            "--threads", "1", "--device", "cpu", "--results", str(out_dir)]
    env = {**os.environ, **LOOPBACK_ENV, "KD_LAB_QUICK": "1"}
    driver = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    killed, addresses = None, set()
    try:
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and driver.poll() is None:
            running = [p for p in session_pids(sessions) if cmdline(p).startswith("ray::run_cell")]
            if running:
                addresses = listening_addresses(session_pids(sessions | {driver.pid}))
                os.kill(running[0], signal.SIGKILL)                   # a Ray worker in the middle of a cell
                killed = running[0]
            time.sleep(0.1)
        out, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, err[-3000:]
    assert killed is not None, "no Ray worker was seen running a cell"
    assert addresses and all(is_loopback(a) for a in addresses), addresses      # nothing beyond 127.0.0.1
    csv_path = out_dir / "ray-tiny-quick.csv"
    text = csv_path.read_text()
    rows = results.read_rows(csv_path)
    assert text.endswith("\n") and len(text.splitlines()) == 1 + len(rows) == 1 + 4       # no row lost or cut
    assert {r["cell_key"] for r in rows} == set(local)
    for r in rows:
        if r["status"] == "ok":                                       # the killed cell was retried
            assert (r["accuracy"], r["val_accuracy"], r["threads"]) == \
                (local[r["cell_key"]]["accuracy"], local[r["cell_key"]]["val_accuracy"], 1)
        else:                                                         # or recorded as failed for good
            assert "Worker" in r["error"] or "died" in r["error"], r["error"]
    assert sum(r["status"] == "ok" for r in rows) >= 3
    assert "| kd | kd |" in out and "Evaluation protocol" in out
