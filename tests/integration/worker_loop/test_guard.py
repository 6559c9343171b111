"""The worker loop's SDK-version guard and the quick SDK import, on the installed runpod SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import runpod.version
from loguru import logger
from podfleet.main import runs_job_loop
from podfleet.worker_loop import VERIFIED_SDK_VERSIONS, install_worker_loop, prompt_job_scaler
from runpod.serverless.modules import rp_scale


@pytest.fixture
def stock_scaler(monkeypatch: pytest.MonkeyPatch) -> type:
    """The SDK's JobScaler, put back after the test."""
    install_worker_loop("stock")
    stock = rp_scale.JobScaler
    monkeypatch.setattr(rp_scale, "JobScaler", stock)
    return stock


@pytest.fixture
def warnings() -> list[str]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    yield seen
    logger.remove(sink)


def test_prompt_on_the_verified_version_installs_the_subclass(stock_scaler, warnings) -> None:
    assert runpod.version.__version__ in VERIFIED_SDK_VERSIONS
    assert install_worker_loop("prompt") == "prompt"
    assert rp_scale.JobScaler is prompt_job_scaler()
    assert issubclass(rp_scale.JobScaler, stock_scaler) and rp_scale.JobScaler is not stock_scaler
    assert install_worker_loop("prompt") == "prompt"  # twice: still one subclass of the SDK's
    assert rp_scale.JobScaler.__mro__[1] is stock_scaler
    assert install_worker_loop("stock") == "stock" and rp_scale.JobScaler is stock_scaler
    assert warnings == []


def test_prompt_on_another_version_keeps_the_stock_loop_and_warns(
    stock_scaler, warnings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runpod.version, "__version__", "1.13.0")
    assert install_worker_loop("prompt") == "stock"
    assert rp_scale.JobScaler is stock_scaler
    assert len(warnings) == 1 and "runpod 1.13.0" in warnings[0] and "stock loop" in warnings[0]


def test_an_unknown_loop_name_is_refused(stock_scaler) -> None:
    with pytest.raises(ValueError, match="WORKER_LOOP: expected 'stock' or 'prompt'"):
        install_worker_loop("fast")  # type: ignore[arg-type]


QUICK_IMPORT = r"""
import json, sys
import cpuinfo
original = cpuinfo.get_cpu_info
from podfleet.sdk_import import import_sdk, processor_name
runpod = import_sdk()
from runpod.serverless.utils import rp_debugger
print(json.dumps({
    "ipython": "IPython" in sys.modules,
    "processor": rp_debugger.PROCESSOR == processor_name() and bool(rp_debugger.PROCESSOR),
    "restored": cpuinfo.get_cpu_info is original,
    "start": callable(runpod.serverless.start),
}))
"""


def test_the_sdk_imports_without_its_probes(repo_root) -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUICK_IMPORT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ipython": False, "processor": True, "restored": True, "start": True}


def test_the_job_loop_is_recognised_as_the_sdk_decides() -> None:
    take = "http://127.0.0.1:1/v2/ep/job-take/$ID?gpu=x"
    assert runs_job_loop(take, []) is True
    assert runs_job_loop(take, ["--rp_log_level", "DEBUG"]) is True
    assert runs_job_loop(None, []) is False and runs_job_loop("", []) is False
    assert runs_job_loop(take, ["--test_input", "{}"]) is False
    assert runs_job_loop(take, ["--test_input={}"]) is False
    assert runs_job_loop(take, ["--rp_serve_api"]) is False
