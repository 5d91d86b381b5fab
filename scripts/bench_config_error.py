"""How long `python -m cnnexp data.batch_size=-1` takes to say so, next to the bare interpreter and `--cfg job`.

Runs, interleaved, N times each in a fresh temp dir: `python -c pass` (interpreter start), `python -m cnnexp --cfg
job` (compose and print, no training), `python -m cnnexp data.batch_size=-1` (the early config check). Prints the
median wall and CPU (user + sys) seconds of each and the ratios to `--cfg job`, checks that the bad value exits 2
with one `error:` line and leaves no outputs/ folder, and writes JSON (--out). On a loaded machine compare the
CPU seconds and the ratios, not the wall times.

    python scripts/bench_config_error.py --repeat 5 --out config_error.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from cnnexp.provenance import cpu_model

CASES = {
    "python -c pass": ["-c", "pass"],
    "cnnexp --cfg job": ["-m", "cnnexp", "--cfg", "job"],
    "cnnexp data.batch_size=-1": ["-m", "cnnexp", "data.batch_size=-1"],
}


def run_once(args: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()

    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for _ in range(opts.repeat):
            for name, args in CASES.items():
                wall, cpu, result = run_once(args, cwd)
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
                if "batch_size" in name:
                    lines = result.stderr.strip().splitlines()
                    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
                    assert not (cwd / "outputs").exists(), "the config error left a run folder"
    medians = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    ref = medians["cnnexp --cfg job"]
    print(f"{'command':<28} {'wall s':>8} {'cpu s':>8} {'wall / --cfg job':>17}")
    for name, m in medians.items():
        print(f"{name:<28} {m['wall']:>8.2f} {m['cpu']:>8.2f} {m['wall'] / ref['wall']:>17.2f}")
    report = {"cpu": cpu_model(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "repeat": opts.repeat,
              "median": medians, "python": platform.python_version()}
    print(f"CPU: {report['cpu']} x{report['cpus']}, load average {report['load_avg'][0]:.1f}")
    if opts.out:
        opts.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
