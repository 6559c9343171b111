"""CPU an idle emulator burns with 4 SDK workers (target: emulator < 5% of one core).

Measured with psutil over --idle-s seconds once every worker is ready: the emulator (this
process: the uvicorn thread serving long-polls and pings; the main thread only sleeps), the
server thread alone, and each worker process tree (the SDK loop + its heartbeat process).
Peer in the same run: the same emulator answering job-take at once (a 1 ms "long-poll", what
an instant 204 costs: the SDK re-polls immediately), for --peer-s seconds.

    python bench/bench_idle_cpu.py [--idle-s 20] [--peer-s 5]
Writes bench/results/idle_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from podfleet.emulator import EmulatorConfig, run_emulator  # noqa: E402


def _thread_cpu_s(proc: psutil.Process, native_id: int | None) -> float:
    for t in proc.threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def _tree_cpu_s(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def measure(take_long_poll_s: float, seconds: float, tmp: Path) -> dict:
    cfg = EmulatorConfig(
        workers=4,
        take_long_poll_s=take_long_poll_s,
        worker_env={"INFER_FITNESS_CHECK": "false", "DATABASE_URL": f"sqlite:///{tmp / 'b.db'}"},
        worker_log_path=tmp / "workers.log",
    )
    me = psutil.Process()
    with run_emulator(cfg) as emu:
        emu.wait_ready(120, polling=True)
        time.sleep(2)  # let start-up work settle (imports, first polls)
        server = next(t for t in threading.enumerate() if t.name == "podfleet-emulator")
        pids = [w["pid"] for w in emu.workers()]
        t0 = time.monotonic()
        proc0, thread0 = me.cpu_times(), _thread_cpu_s(me, server.native_id)
        workers0 = [_tree_cpu_s(pid) for pid in pids]
        time.sleep(seconds)
        wall = time.monotonic() - t0
        proc1, thread1 = me.cpu_times(), _thread_cpu_s(me, server.native_id)
        workers1 = [_tree_cpu_s(pid) for pid in pids]
        health = emu.health()
    per_worker = [(b - a) / wall * 100 for a, b in zip(workers0, workers1, strict=True)]
    return {
        "take_long_poll_s": take_long_poll_s,
        "seconds": round(wall, 1),
        "emulator_process_pct": round(
            ((proc1.user + proc1.system) - (proc0.user + proc0.system)) / wall * 100, 2
        ),
        "emulator_server_thread_pct": round((thread1 - thread0) / wall * 100, 2),
        "worker_pct_each": [round(p, 2) for p in per_worker],
        "workers_total_pct": round(sum(per_worker), 2),
        "workers_ready": health["workers"]["idle"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-s", type=float, default=20)
    parser.add_argument("--peer-s", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = measure(20.0, args.idle_s, Path(tmp))
        peer = measure(0.001, args.peer_s, Path(tmp))
    results = {"long_poll": ours, "instant_204_peer": peer, "target_pct": 5}
    print("idle CPU, 4 SDK workers, % of one core")
    print(f"{'':<26} {'emulator':>9} {'server thr':>10} {'workers sum':>12} {'per worker':>11}")
    for name, r in (("long-poll 20 s (ours)", ours), ("instant 204 (peer)", peer)):
        each = max(r["worker_pct_each"])
        print(
            f"{name:<26} {r['emulator_process_pct']:>9} {r['emulator_server_thread_pct']:>10}"
            f" {r['workers_total_pct']:>12} {each:>11}"
        )
    ratio = peer["emulator_process_pct"] / max(ours["emulator_process_pct"], 0.01)
    verdict = "meets" if ours["emulator_process_pct"] < 5 else "MISSES"
    print(
        f"emulator: {ours['emulator_process_pct']}% ({verdict} the <5% target); peer {ratio:.0f}x"
    )
    out = ROOT / "bench" / "results" / "idle_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
