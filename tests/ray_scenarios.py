"""Ray executor scenarios on a local 2-worker cluster, for ``test_ray_executor.py``.

Run inside a private network namespace (``unshare -n``): the script brings ``lo`` up, checks that it
is the only interface, starts one Ray cluster on 127.0.0.1 and writes its findings to
``WORKDIR/result.json``. The reference entries come from the local executor (``prepare``: the tests
call it in their own process before they start this script):

- ``ray``: the plan rendered by Ray, compared with the local executor's entries, while a worker is
  SIGKILLed mid-job (and restarted): it stops in its first job and announces itself through a named
  pipe, and the driver kills it once the first entry is stored; writes counted;
- ``driver_kill``: a second driver joins the cluster, dies by SIGKILL after ``K`` entries, and a
  rerun renders what is missing, its workers writing the entries themselves (``shared_cache``).

``python tests/ray_scenarios.py WORKDIR`` runs them all; ``--driver ADDRESS K`` is the driver that dies.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featgen.site.render.cache import RenderCache  # noqa: E402
from featgen.site.render.jobs import RenderJob  # noqa: E402

KILL_AFTER = 3  # entries the dying driver writes


TINY = {"profiles": {"tiny": {
    "photos": ["chelsea", "coffee"], "chunk": 2, "crop": 16, "top": 2, "examples": "offline", "examples_shard": 10,
    "galleries": [{"model": "vgg16_hed", "backend": "torch", "layers": ["block1_conv1", "block2_conv1"], "units": 4,
                   "size": 32, "steps": 4, "naive_steps": 4, "views": ["regularized", "naive", "photos", "examples"],
                   "device": "cpu"}],
}}}  # fmt: skip


def tiny_plan() -> list[RenderJob]:
    """Thirteen small jobs of HED-VGG16 (torch): two layers; two chunks of two units each for two
    optimized views, and the photos view (activation strips over two photos) of each layer; and the
    three shards of the dataset-example scan of the 29 offline photos, both layers hooked at once."""
    from featgen.site.render.config import parse_config
    from featgen.site.render.plan import plan

    p = plan(parse_config(TINY)["tiny"], None)
    return p.jobs + p.scans


class CountingCache(RenderCache):
    """A render cache that logs every ``put`` (from any process) to ``<root>.writes``."""

    def put(self, key, arrays, meta):
        super().put(key, arrays, meta)
        fd = os.open(f"{self.root}.writes", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{key} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def log(self) -> list[tuple[str, int]]:
        """(key, writer's pid) per write."""
        path = Path(f"{self.root}.writes")
        lines = path.read_text().splitlines() if path.exists() else []
        return [(key, int(pid)) for key, pid in (line.split() for line in lines)]

    def writes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, _ in self.log():
            counts[key] = counts.get(key, 0) + 1
        return counts


def entry_bytes(cache: RenderCache, key: str) -> bytes | None:
    d = cache.root / key[:2] / key
    if not cache.has(key):
        return None
    return (d / "data.npz").read_bytes() + (d / "meta.json").read_bytes()


def compare(cache: RenderCache, reference: RenderCache, jobs: list[RenderJob]) -> dict:
    """How many of the plan's entries exist, and how many are byte-identical to the reference's."""
    same = 0
    for j in jobs:
        ours, theirs = entry_bytes(cache, j.key), entry_bytes(reference, j.key)
        same += ours is not None and ours == theirs
    return {"entries": sum(cache.has(j.key) for j in jobs), "identical": same}


# --- the network -----------------------------------------------------------------------------------
def loopback_up() -> list[str]:
    """Bring ``lo`` up (SIOCGIFFLAGS / SIOCSIFFLAGS); return the interfaces this namespace has."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
    return [name for _, name in socket.if_nameindex()]


def bound_addresses() -> list[str]:
    """Every listening TCP and bound UDP address in this network namespace (from /proc/net)."""
    found = set()
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        path = Path("/proc/net") / table
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            fields = line.split()
            if fields[3] != state:
                continue
            hexaddr = fields[1].split(":")[0]
            raw = bytes.fromhex(hexaddr)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # per-word little-endian
            found.add(str(ipaddress.ip_address(raw)))
    return sorted(found)


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


# --- killing a worker mid-job ------------------------------------------------------------------------
class Handshake:
    """A named pipe between a worker that is mid-job and the driver: the worker writes its pid and
    then waits to be killed; the driver's read returns once the worker is there (an event, not a poll)."""

    def __init__(self, work: Path):
        self.fifo, self.once = work / "busy.fifo", work / "blocked-once"

    def create(self) -> None:
        os.mkfifo(self.fifo)

    def block_once(self) -> None:
        """In a worker: on the first call only, announce this process and wait until it is killed."""
        try:
            os.close(os.open(self.once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # the job's second run, after the kill: render as usual
        with open(self.fifo, "w") as f:  # blocks until the driver opens its end
            f.write(str(os.getpid()))
        while True:
            signal.pause()

    def kill_the_waiting_worker(self, limit_s: float = 300) -> int:
        """In the driver: read the worker's pid (waiting for it to arrive, at most ``limit_s``) and SIGKILL it."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = b""
            while not data:
                if not select.select([fd], [], [], limit_s)[0]:
                    raise TimeoutError("no worker reached the blocking job")
                data = os.read(fd, 32)  # b"" while no writer has opened the pipe yet
        finally:
            os.close(fd)
        pid = int(data)
        os.kill(pid, signal.SIGKILL)
        return pid


def blocking_worker(work: Path, key: str):
    """A ``RenderWorker`` whose first run of job ``key`` stops mid-job and waits to be killed."""
    from featgen.site.render.executors import ray as ray_executor

    class BlockingWorker(ray_executor.RenderWorker):
        def run(self, task):
            if any(job.key == key for job in task):
                Handshake(work).block_once()
            return super().run(task)

    return BlockingWorker


class KillWorkerAfterFirst:
    """Progress that, when the first job is stored, SIGKILLs the worker waiting mid-job."""

    def __init__(self, work: Path):
        self.work = work
        self.killed: int | None = None
        self.workers: dict[str, int] = {}

    def advance(self, job, worker=None):
        self.workers[worker] = self.workers.get(worker, 0) + 1
        if self.killed is None:
            self.killed = Handshake(self.work).kill_the_waiting_worker()


class DieAfter:
    """Progress that SIGKILLs this process (the driver) once ``k`` jobs are stored."""

    def __init__(self, k: int):
        self.k, self.n = k, 0

    def advance(self, job, worker=None):
        self.n += 1
        if self.n == self.k:
            os.kill(os.getpid(), signal.SIGKILL)


# --- the scenarios -----------------------------------------------------------------------------------
def dying_driver(work: Path, address: str, k: int) -> None:
    from featgen.site.render.executors import ray as ray_executor

    jobs = pickle.loads((work / "jobs.pickle").read_bytes())
    ray_executor.execute(jobs, CountingCache(work / "resume"), DieAfter(k), address=address, workers=2)


def prepare(work: Path) -> None:
    """The plan's jobs, pickled to ``WORKDIR/jobs.pickle``, and their entries from the local executor
    in ``WORKDIR/local``: the reference of every scenario. The driver itself then needs no framework."""
    from featgen.site.render.executors import run_jobs

    jobs = tiny_plan()
    (work / "jobs.pickle").write_bytes(pickle.dumps(jobs))
    run_jobs(jobs, CountingCache(work / "local"), executor="local", quiet=True)


def main(work: Path) -> dict:
    out: dict = {"interfaces": loopback_up(), "seconds": {}}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        out["seconds"][name] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()

    from featgen.site.render.executors import missing_jobs, run_jobs

    if not (work / "jobs.pickle").exists():
        prepare(work)  # run alone; the tests prepare in their own process, where torch is loaded already
        lap("local")
    jobs = pickle.loads((work / "jobs.pickle").read_bytes())
    out["jobs"] = len(jobs)
    local = CountingCache(work / "local")

    import ray

    from featgen.site.render.executors import ray as ray_executor

    tmp = tempfile.mkdtemp(prefix="fgray", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, _node_ip_address="127.0.0.1",
                 _temp_dir=tmp, log_to_driver=False)  # fmt: skip
        lap("cluster")
        out["bound"] = bound_addresses()
        out["node_ip"] = ray.util.get_node_ip_address()

        cache = CountingCache(work / "ray")
        Handshake(work).create()
        progress = KillWorkerAfterFirst(work)
        # the first job of the second actor (the driver queues two on each) stops mid-job until killed
        plain, ray_executor.RenderWorker = ray_executor.RenderWorker, blocking_worker(work, jobs[2].key)
        try:
            ray_executor.execute(jobs, cache, progress, workers=2, max_in_flight=2)
        finally:
            ray_executor.RenderWorker = plain
        writes = cache.writes()
        out["ray"] = {**compare(cache, local, jobs), "killed": progress.killed, "workers": progress.workers,
                      "stored": sum(progress.workers.values()), "writes": sum(writes.values()),
                      "max_writes": max(writes.values())}  # fmt: skip
        lap("ray")

        address = ray.get_runtime_context().gcs_address
        cache = CountingCache(work / "resume")
        proc = subprocess.run([sys.executable, __file__, str(work), "--driver", address, str(KILL_AFTER)],
                              capture_output=True, text=True, timeout=240)  # fmt: skip
        first = cache.writes()
        missing = len(missing_jobs(jobs, cache))
        Path(f"{cache.root}.writes").unlink()
        stats = run_jobs(jobs, cache, executor="ray", quiet=True, workers=2, shared_cache=True)
        again = cache.writes()
        out["driver_kill"] = {
            "returncode": proc.returncode, "stderr": proc.stderr[-2000:], "written_before": sum(first.values()),
            "missing": missing, "cached": stats.cached, "rendered": stats.rendered, "rerun_writes": sum(again.values()),
            "rerun_max_writes": max(again.values()), "rerun_writers": sorted({pid for _, pid in cache.log()} - {os.getpid()}),
            "rerun_by_driver": sum(pid == os.getpid() for _, pid in cache.log()),
            "overlap": len(set(first) & set(again)), **compare(cache, local, jobs),
        }  # fmt: skip
        lap("driver_kill")
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    work_dir = Path(sys.argv[1])
    if "--driver" in sys.argv:
        i = sys.argv.index("--driver")
        dying_driver(work_dir, sys.argv[i + 1], int(sys.argv[i + 2]))
        sys.exit(0)  # not reached: the driver kills itself
    (work_dir / "result.json").write_text(json.dumps(main(work_dir)))  # stdout carries Ray's own messages
