"""The Ray executor on a local cluster of 2 workers, in a private network namespace (loopback only).

The cluster runs in a subprocess started with ``unshare -n`` (``tests/ray_scenarios.py``), so no Ray
process can reach beyond 127.0.0.1; this process reads the scenarios' findings from JSON. One cluster
start serves every scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # one cluster start serves every test

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).with_name("ray_scenarios.py")


def _namespace_command() -> list[str] | None:
    """``unshare -n`` (root) or ``unshare -rn`` (a user namespace), whichever works here; else None."""
    if shutil.which("unshare") is None:
        return None
    for cmd in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*cmd, "true"], capture_output=True).returncode == 0:
            return cmd
    return None


def _skip_reason() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'featgen[ray]')"
    if not sys.platform.startswith("linux"):
        return "the Ray tests need a Linux network namespace (unshare -n)"
    if _namespace_command() is None:
        return "cannot create a private network namespace (unshare -n / -rn failed): Ray must not use the network"
    return None


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> dict:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("ray")
    from ray_scenarios import prepare

    prepare(work)  # the local executor's reference entries, in this process (torch is imported already)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "FEATGEN_PROGRESS": "0"}  # fmt: skip
    proc = subprocess.run([*_namespace_command(), sys.executable, str(SCENARIOS), str(work)], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    result = work / "result.json"
    assert proc.returncode == 0 and result.exists(), f"scenarios failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(result.read_text())


def test_ray_cluster_uses_loopback_only(found):
    assert found["interfaces"] == ["lo"]
    assert found["node_ip"] == "127.0.0.1"
    from ray_scenarios import is_loopback

    assert found["bound"] and all(is_loopback(a) for a in found["bound"]), found["bound"]


def test_ray_entries_match_local_executor(found):
    """One Ray run serves this test and the next: its entries are the local executor's, byte for byte."""
    r = found["ray"]
    assert r["stored"] == r["entries"] == r["identical"] == found["jobs"] == 13  # 10 renders, 3 scan shards
    assert sorted(r["workers"]) == ["w0", "w1"]  # both actors ran jobs
    assert r["max_writes"] == 1


def test_ray_worker_killed_mid_job_run_completes_once(found):
    r = found["ray"]
    assert r["killed"], "no worker was caught mid-job"
    assert r["entries"] == r["identical"] == r["stored"] == found["jobs"]
    assert r["writes"] == found["jobs"] and r["max_writes"] == 1


def test_ray_killed_driver_rerun_submits_only_missing(found):
    """The rerun also writes through the workers (``shared_cache``): each missing entry once."""
    r = found["driver_kill"]
    assert r["returncode"] == -9, r["stderr"]
    assert r["written_before"] == 3  # the driver died right after its third entry
    assert r["missing"] == r["rendered"] == r["rerun_writes"] == found["jobs"] - 3
    assert r["cached"] == 3 and r["overlap"] == 0 and r["rerun_max_writes"] == 1
    assert r["rerun_by_driver"] == 0 and len(r["rerun_writers"]) == 2  # both workers wrote, the driver did not
    assert r["entries"] == r["identical"] == found["jobs"]
