"""Measured planning, in the spirit of FFTW's planner and cuDNN's benchmark mode: time the candidate
implementations of an operation on its real shape once per machine, keep the fastest, remember it on disk.

A decision is keyed by the operation (e.g. `conv2d.forward`), the call's geometry (shapes, stride, padding,
dtype), its batch size rounded up to a power of two (`batch_bucket`) and the thread count; the cache file also
records a signature of the machine and the build (CPU model and flags, torch version, the compiled kernels' build
id), and a file written under another signature is stale: every decision in it is planned again. A corrupt file
gives one warning and is replaced.

Modes (`CNNEXP_PLAN` or `set_mode`):
    measure   time the candidates the first time a key is seen (a bounded cost: `BUDGET_S` per decision);
    estimate  no timing: the built-in choice each call site passes as `default` (what cnnexp did before planning);
    off       the same as estimate, and the cache is neither read nor written.

The cache lives in `CNNEXP_PLAN_CACHE`, else next to the compiled kernels (`~/.cache/cnnexp/plans.json`).

A decision measured while the machine is oversubscribed (`machine_busy()`: more runnable threads than cores)
is used by this process only and never written: such timings measure the run queue, not the code (every
candidate then takes a multiple of the scheduler's time slice), and a choice cached from them would stay wrong
on this machine for good. The next process plans it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODE_ENV = "CNNEXP_PLAN"
CACHE_ENV = "CNNEXP_PLAN_CACHE"
MODES = ("measure", "estimate", "off")
FORMAT = "3"  # part of the signature: plans of an older planner are stale (format 1 cached busy-machine timings;
#              format 2 keyed decisions without the batch size, so a batch of one decided for every batch)
BUDGET_S = 0.4  # wall time one decision may spend timing its candidates (warm-up included; one timed round at least)
REPEATS = 3  # timed runs per candidate, interleaved, when the budget allows


@dataclass
class Decision:
    """One planned choice: `choice` among the timed candidates (`timings_ms`: the fastest run of each candidate;
    empty when nothing was timed), and where it came from: measured now, read from the cache, or the built-in
    estimate."""

    op: str
    key: str
    choice: str
    source: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    busy: bool = False  # measured on an oversubscribed machine: used by this process, not cached


def default_cache_path() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnnexp" / "plans.json"


def machine_signature(build_id: str = "") -> dict[str, str]:
    """What makes timings from one machine and build meaningless on another."""
    import torch

    from cnnexp.provenance import cpu_model

    flags = ""
    with contextlib.suppress(OSError):
        flags = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith(("flags", "Features"))), "")
    return {"cpu": cpu_model(), "cpu_flags": hashlib.sha256(flags.encode()).hexdigest()[:16], "torch": torch.__version__,
            "build": build_id, "planner": FORMAT}


def batch_bucket(batch: int) -> int:
    """The batch sizes that share a decision: `batch` rounded up to a power of two (1, 2, 4, ..., 128, 256, ...).

    A choice timed on a batch of one (the TensorBoard graph traces `example_input_array` before training) weighs
    per-call costs that a batch of 128 amortizes, so the two are planned apart; a last, smaller batch usually shares
    its full batch's bucket, so planning stays bounded (a few buckets per layer)."""
    return 1 << max(0, int(batch) - 1).bit_length()


def machine_busy() -> bool:
    """More runnable threads than cores (the 1-minute load average above the core count + 0.5)."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    except OSError:  # no load average on this platform
        return False


def _time_candidates(candidates: Mapping[str, Callable[[], Any]], budget_s: float, repeats: int,
                     sync: Callable[[], None]) -> tuple[dict[str, float], dict[str, str]]:
    """The fastest of each candidate's runs in seconds, timed round-robin; a candidate that raises is left out
    with its error. The minimum, not the median: other processes only ever add time, so the fastest run is the
    best estimate of the implementation's own cost on a shared machine."""
    times: dict[str, list[float]] = {}
    failed: dict[str, str] = {}
    start = time.perf_counter()
    for name, fn in candidates.items():  # warm-up: first-call costs (allocation, kernel build) are not timed
        try:
            fn()
            sync()
            times[name] = []
        except Exception as error:  # noqa: BLE001 - a candidate that cannot run here is simply not chosen
            failed[name] = f"{type(error).__name__}: {error}"
    for _ in range(repeats):
        for name in times:
            t0 = time.perf_counter()
            candidates[name]()
            sync()
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return {name: min(ts) for name, ts in times.items() if ts}, failed


class Planner:
    """Chooses among interchangeable implementations by timing them once per key, and caches the choice.

    Args:
        path: the JSON cache file.
        signature: the machine/build signature (`machine_signature()`); a cache written under another is stale.
        mode: "measure" | "estimate" | "off".
    """

    def __init__(self, path: Path, signature: Mapping[str, str], mode: str = "measure",
                 budget_s: float = BUDGET_S, repeats: int = REPEATS) -> None:
        if mode not in MODES:
            from cnnexp.errors import ConfigError

            raise ConfigError(f"{MODE_ENV}={mode!r} is not a planning mode. Fix: use one of {', '.join(MODES)}.")
        self.path, self.signature, self.mode = Path(path), dict(signature), mode
        self.budget_s, self.repeats = budget_s, repeats
        self._recorders: list[list[Decision]] = []  # open `recording()` blocks
        self._memo: dict[str, Decision] = {}  # this process's decisions: a hit costs one dict lookup
        self._remembered: dict[Hashable, str] = {}  # callers' own keys of decisions already made (`remember`)
        self._plans: dict[str, dict[str, Any]] | None = None

    def _key(self, op: str, key: str) -> str:
        import torch

        return f"{op}|{key}|threads={torch.get_num_threads()}"

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._plans is None:
            self._plans = {}
            if self.mode != "off" and self.path.is_file():
                try:
                    data = json.loads(self.path.read_text())
                    plans = data["plans"] if isinstance(data, dict) and isinstance(data.get("plans"), dict) else None
                    if plans is None:
                        raise ValueError("no 'plans' mapping")
                    if data.get("signature") == self.signature:
                        self._plans = plans
                except (OSError, ValueError) as error:
                    warnings.warn(f"cnnexp: the plan cache {self.path} is unreadable ({error}); planning again "
                                  f"and replacing it. Fix: nothing to do (or delete the file).",
                                  RuntimeWarning, stacklevel=3)
        return self._plans

    def _save(self) -> None:
        if self.mode == "off" or self._plans is None:
            return
        from cnnexp.atomic_write import atomic_write_text

        try:  # atomic: parallel jobs never read a half-written file
            atomic_write_text(self.path, json.dumps({"signature": self.signature, "plans": self._plans}, indent=1,
                                                    sort_keys=True))
        except OSError as error:
            warnings.warn(f"cnnexp: could not write the plan cache {self.path} ({error}); plans are kept for "
                          f"this process only. Fix: set {CACHE_ENV} to a writable file.", RuntimeWarning,
                          stacklevel=3)

    def choose(self, op: str, key: str, candidates: Mapping[str, Callable[[], Any]], default: str,
               sync: Callable[[], None] = lambda: None) -> Decision:
        """The implementation to use for `op` on `key`: cached, measured now, or `default` (estimate/off).

        `candidates` maps names to zero-argument callables that run the operation on the real shapes; they
        are only called in "measure" mode on a cache miss. `default` must be one of them.
        """
        full = self._key(op, key)
        decision = self._memo.get(full)
        if decision is None or decision.choice not in candidates:
            decision = self._memo[full] = self._decide(op, key, full, candidates, default, sync)
        for record in self._recorders:
            record.append(decision)
        return decision

    def _decide(self, op: str, key: str, full: str, candidates: Mapping[str, Callable[[], Any]], default: str,
                sync: Callable[[], None]) -> Decision:
        plans = self._load()
        if self.mode != "measure":
            decision = Decision(op, key, default, self.mode)
        elif full in plans and plans[full].get("choice") in candidates:
            entry = plans[full]
            decision = Decision(op, key, entry["choice"], "cached", dict(entry.get("timings_ms", {})))
        else:
            seconds, failed = _time_candidates(candidates, self.budget_s, self.repeats, sync)
            choice = min(seconds, key=seconds.get) if seconds else default
            if choice != default and default in seconds:
                # head to head again before the built-in choice is retired: one burst of other work on the machine
                # during the default's runs must not decide for good (the minimum of all runs counts)
                again, _ = _time_candidates({name: candidates[name] for name in (choice, default)}, self.budget_s,
                                            self.repeats, sync)
                seconds.update({name: min(seconds[name], s) for name, s in again.items()})
                choice = min(seconds, key=seconds.get)
            timings = {name: s * 1e3 for name, s in seconds.items()}
            decision = Decision(op, key, choice, "measured", timings, failed, busy=machine_busy())
            if not decision.busy:
                plans[full] = {"choice": choice, "timings_ms": timings}
                self._save()
        return decision

    def remembered(self, call_key: Hashable) -> str | None:
        """The choice `remember`ed for `call_key`, or None (also while a `recording()` block wants every decision
        reported through `choose`). For hot call sites: a tuple the caller already has is cheaper to look up than
        the string key `choose` needs."""
        return None if self._recorders else self._remembered.get(call_key)

    def remember(self, call_key: Hashable, choice: str) -> None:
        """Keep `choice` (what `choose` returned) under the caller's own key, for `remembered`."""
        self._remembered[call_key] = choice

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Decision]]:
        """Collect the decisions made inside the block (for `python -m cnnexp.plan`)."""
        out: list[Decision] = []
        self._recorders.append(out)
        try:
            yield out
        finally:
            self._recorders.remove(out)


_current: Planner | None = None


def current() -> Planner:
    """The process's planner: mode from `CNNEXP_PLAN` (default "measure"), cache at `default_cache_path()`,
    signature of this machine and of the loaded kernel build."""
    global _current
    if _current is None:
        from . import kernels

        _current = Planner(default_cache_path(), machine_signature(kernels.build_id()),
                           mode=os.environ.get(MODE_ENV, "measure").strip().lower() or "measure")
    return _current


def reset(planner: Planner | None = None) -> None:
    """Replace the process's planner (None: build it again from the environment on next use)."""
    global _current
    _current = planner


def run(op: str, key: str, candidates: Mapping[str, Callable[[], Any]], default: str) -> Any:
    """Call the candidate the process's planner picks for `op` on `key` (just `default` unless it measures)."""
    plan = current()
    if plan.mode != "measure":
        return candidates[default]()
    return candidates[plan.choose(op, key, candidates, default).choice]()


@contextlib.contextmanager
def using(planner: Planner) -> Iterator[Planner]:
    """Within the block, `planner` is the process's planner (e.g. an "estimate" one for a side-by-side benchmark of
    the built-in choices); the previous one is restored afterwards."""
    global _current
    before = _current
    _current = planner
    try:
        yield planner
    finally:
        _current = before


def built_in() -> Planner:
    """A planner that always takes the built-in choices (mode "estimate"), for comparisons."""
    return Planner(default_cache_path(), {}, mode="estimate")
