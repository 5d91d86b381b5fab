"""The planner times candidates once per key, keeps the fastest, and caches it per machine signature."""

import json

import pytest

from cnnexp.errors import ConfigError
from cnnexp.functional import planner as planner_mod
from cnnexp.functional.planner import Planner

SIG = {"cpu": "test cpu", "cpu_flags": "f", "torch": "t", "build": "b1"}


@pytest.fixture
def clock(monkeypatch):
    """A fake perf_counter that only moves when a candidate runs: timings are exact, not measured."""
    state = {"now": 0.0, "calls": []}
    monkeypatch.setattr(planner_mod.time, "perf_counter", lambda: state["now"])
    monkeypatch.setattr(planner_mod, "machine_busy", lambda: False)  # whatever else this machine is running

    def candidate(name, cost):
        def run():
            state["calls"].append(name)
            state["now"] += cost
        return run

    state["candidate"] = candidate
    return state


def candidates(clock, **costs):
    return {name: clock["candidate"](name, cost) for name, cost in costs.items()}


def test_miss_measures_and_keeps_the_fastest_then_a_hit_runs_nothing(tmp_path, clock):
    path = tmp_path / "plans.json"
    first = Planner(path, SIG).choose("conv2d.forward", "k1", candidates(clock, direct=0.003, gemm=0.001), "direct")
    assert (first.choice, first.source) == ("gemm", "measured")
    assert first.timings_ms == pytest.approx({"direct": 3.0, "gemm": 1.0})
    clock["calls"].clear()
    again = Planner(path, SIG).choose("conv2d.forward", "k1", candidates(clock, direct=0.003, gemm=0.001), "direct")
    assert (again.choice, again.source, clock["calls"]) == ("gemm", "cached", [])
    other = Planner(path, SIG).choose("conv2d.forward", "k2", candidates(clock, direct=0.001, gemm=0.002), "gemm")
    assert (other.choice, other.source) == ("direct", "measured")
    assert len(json.loads(path.read_text())["plans"]) == 2


def test_a_cache_written_by_another_build_is_stale(tmp_path, clock):
    path = tmp_path / "plans.json"
    Planner(path, SIG).choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
    stale = Planner(path, {**SIG, "build": "b2"}).choose("op", "k", candidates(clock, a=0.003, b=0.002), "a")
    assert (stale.choice, stale.source) == ("b", "measured")
    assert json.loads(path.read_text())["signature"]["build"] == "b2"


def test_a_corrupt_cache_warns_once_and_is_replaced(tmp_path, clock):
    path = tmp_path / "plans.json"
    path.write_text("{not json")
    planner = Planner(path, SIG)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        decision = planner.choose("op", "k", candidates(clock, a=0.002, b=0.001), "a")
    assert decision.choice == "b"
    assert json.loads(path.read_text())["plans"]


def test_a_failing_candidate_is_not_chosen(tmp_path, clock):
    def broken():
        raise RuntimeError("no kernel here")

    cands = {**candidates(clock, slow=0.005), "fast_but_broken": broken}
    decision = Planner(tmp_path / "p.json", SIG).choose("op", "k", cands, "fast_but_broken")
    assert decision.choice == "slow" and "no kernel here" in decision.failed["fast_but_broken"]


@pytest.mark.parametrize("mode", ["estimate", "off"])
def test_estimate_and_off_take_the_default_without_timing(tmp_path, clock, mode):
    path = tmp_path / "plans.json"
    decision = Planner(path, SIG, mode=mode).choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
    assert (decision.choice, decision.source, clock["calls"]) == ("b", mode, [])
    assert not path.exists()


def test_an_unknown_mode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Fix:"):
        Planner(tmp_path / "p.json", SIG, mode="fastest")


def test_the_thread_count_is_part_of_the_key(tmp_path, clock):
    import torch

    path = tmp_path / "plans.json"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Planner(path, SIG).choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
        torch.set_num_threads(2)
        decision = Planner(path, SIG).choose("op", "k", candidates(clock, a=0.002, b=0.001), "a")
    finally:
        torch.set_num_threads(threads)
    assert (decision.choice, decision.source) == ("b", "measured")


def test_a_default_slowed_once_gets_a_second_look_before_it_is_retired(tmp_path, clock):
    """Other work on the machine during the built-in choice's runs (here: its first three runs cost 10x) must not
    retire it: the winner and the default are timed head to head again, and the fastest run of each counts."""
    runs = {"default": 0}

    def default():
        runs["default"] += 1
        clock["now"] += 0.010 if runs["default"] <= 4 else 0.001  # warm-up and three timed runs under a burst

    cands = {"default": default, **candidates(clock, other=0.002)}
    decision = Planner(tmp_path / "p.json", SIG).choose("op", "k", cands, "default")
    assert decision.choice == "default" and decision.timings_ms == pytest.approx({"default": 1.0, "other": 2.0})
    steady = Planner(tmp_path / "q.json", SIG).choose("op", "k", candidates(clock, default=0.003, other=0.002),
                                                       "default")
    assert steady.choice == "other"  # a real difference survives the second look


def test_batch_buckets_are_powers_of_two_rounding_up():
    assert [planner_mod.batch_bucket(n) for n in (0, 1, 2, 3, 4, 5, 100, 128, 129)] == [1, 1, 2, 4, 4, 8, 128, 128,
                                                                                         256]


def test_recording_collects_every_call_and_a_repeat_is_a_memo_hit(tmp_path, clock):
    planner = Planner(tmp_path / "p.json", SIG)
    with planner.recording() as decisions:
        planner.choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
        clock["calls"].clear()
        planner.choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
    planner.choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
    assert [d.choice for d in decisions] == ["a", "a"] and clock["calls"] == []


def test_a_remembered_choice_is_found_by_its_call_key_except_while_recording(measuring):
    """The conv's hot path looks its decisions up by a tuple it already has; `python -m cnnexp.plan` still sees
    every decision (a recording block bypasses the shortcut), and a repeated call is reported as a hit."""
    import torch

    from cnnexp.functional import conv2d

    x, w = torch.randn(2, 8, 6, 6), torch.randn(8, 8, 3, 3)
    conv2d(x, w, None, padding="same")
    (call_key,) = [k for k in measuring._remembered if k[0] == "forward"]
    (decision,) = [d for d in measuring._memo.values() if d.op == "conv2d.forward"]
    assert measuring.remembered(call_key) == decision.choice
    with measuring.recording() as decisions:
        assert measuring.remembered(call_key) is None
        conv2d(x, w, None, padding="same")
    assert [(d.op, d.source) for d in decisions] == [("conv2d.forward", "measured")]  # this process's decision


@pytest.fixture
def measuring(tmp_path, monkeypatch):
    """The process's planner measures, with its cache in tmp_path; restored afterwards. Its decisions are cached
    however busy the machine is (the suite's other workers keep the cores busy)."""
    monkeypatch.setattr(planner_mod, "machine_busy", lambda: False)
    planner = Planner(tmp_path / "plans.json", planner_mod.machine_signature("test"), mode="measure", budget_s=0.2)
    planner_mod.reset(planner)
    yield planner
    planner_mod.reset(None)


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 16, 1), (16, 32, 1), (5, 7, 2)])
def test_planned_conv_is_correct_whatever_it_chose_and_plans_each_direction(measuring, c_in, c_out, stride):
    import torch

    from cnnexp.functional import conv2d, conv2d_torch

    x = torch.randn(2, c_in, 9, 10, requires_grad=True)
    w = torch.randn(c_out, c_in, 3, 3, requires_grad=True)
    b = torch.randn(c_out, requires_grad=True)
    with measuring.recording() as decisions:
        y = conv2d(x, w, b, stride=stride, padding="same")
        grads = torch.autograd.grad(y.square().sum(), (x, w, b))
    want_y = conv2d_torch(x, w, b, stride=stride, padding="same")
    want = torch.autograd.grad(want_y.square().sum(), (x, w, b))
    torch.testing.assert_close(y, want_y, rtol=1e-4, atol=1e-3)
    for got, ref in zip(grads, want):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-2)
    assert [d.op for d in decisions] == ["conv2d.forward", "conv2d.input_grad", "conv2d.weight_grad"]
    for d in decisions:
        assert d.source == "measured" and d.choice in d.timings_ms and "im2col" in d.timings_ms
        assert ("grid_gemm" in d.timings_ms) == (stride == 1)  # the grid paths only run stride 1


def test_a_batch_of_one_and_a_full_batch_are_planned_apart(measuring):
    """The TensorBoard graph traces a batch of one before training: its decision must not be the one a batch of 64
    uses (per-call costs decide at 1, arithmetic at 64); a last batch of 40 shares the bucket of 64."""
    import torch

    from cnnexp.functional import conv2d, max_pool2d

    w = torch.randn(8, 4, 3, 3)
    with measuring.recording() as decisions:
        for batch in (1, 64, 40):
            max_pool2d(conv2d(torch.randn(batch, 4, 6, 6), w, padding="same"), 2)
    assert [d.op for d in decisions] == ["conv2d.forward", "max_pool2d.forward"] * 3
    assert "batch<=1 " in decisions[0].key and "batch<=64 " in decisions[2].key
    assert decisions[0] is not decisions[2] and decisions[1] is not decisions[3]  # planned apart
    assert decisions[4] is decisions[2] and decisions[5] is decisions[3]  # 40 is a memo hit on 64's decision


def test_plan_command_prints_a_choice_per_conv_direction(measuring, capsys):
    from cnnexp import plan

    plan.main(["model=tiny_cnn", "data.batch_size=4"])
    out = capsys.readouterr().out
    assert "conv2d.forward" in out and "conv2d.weight_grad" in out and "measured" in out
    assert "built-in choices" in out and "planned" in out
    assert json.loads(measuring.path.read_text())["plans"]


def test_planned_pool_times_kernel_and_taps_and_gives_torchs_result(measuring):
    import torch
    import torch.nn.functional as F

    from cnnexp.functional import max_pool2d

    x = torch.randn(2, 5, 8, 9).contiguous(memory_format=torch.channels_last).requires_grad_()
    with measuring.recording() as decisions:
        y = max_pool2d(x, 2)
        (gx,) = torch.autograd.grad(y.square().sum(), x)
    ref = F.max_pool2d(x, 2)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(gx, torch.autograd.grad(ref.square().sum(), x)[0])
    assert [d.op for d in decisions] == ["max_pool2d.forward", "max_pool2d.backward"]
    assert all(set(d.timings_ms) == {"kernel", "taps"} for d in decisions)


def test_a_plan_made_with_the_kernels_off_is_not_reused_with_them_on(measuring):
    import torch

    from cnnexp.functional import conv2d, kernels

    from .kernels_built import require_kernels

    require_kernels()
    x, w = torch.randn(1, 3, 8, 8), torch.randn(16, 3, 3, 3)
    with kernels.disabled(), measuring.recording() as off:
        conv2d(x, w, padding="same")
    with measuring.recording() as on:
        conv2d(x, w, padding="same")
    assert not any(name.startswith("direct") for name in off[0].timings_ms)
    assert on[0].source == "measured" and "direct" in on[0].timings_ms


def test_a_decision_measured_on_a_busy_machine_is_used_but_not_cached(tmp_path, clock, monkeypatch):
    """Timings taken while other processes hold the cores are kept for this process only; the next plans again."""
    path = tmp_path / "plans.json"
    monkeypatch.setattr(planner_mod, "machine_busy", lambda: True)
    busy = Planner(path, SIG)
    first = busy.choose("op", "k", candidates(clock, a=0.001, b=0.002), "b")
    assert (first.choice, first.source, first.busy) == ("a", "measured", True)
    assert busy.choose("op", "k", candidates(clock, a=0.001, b=0.002), "b") is first  # this process: memo
    assert not path.exists()
    monkeypatch.setattr(planner_mod, "machine_busy", lambda: False)
    quiet = Planner(path, SIG).choose("op", "k", candidates(clock, a=0.003, b=0.002), "a")
    assert (quiet.choice, quiet.source, quiet.busy) == ("b", "measured", False)
    assert json.loads(path.read_text())["plans"]


def test_machine_busy_compares_the_load_with_the_cores(monkeypatch):
    monkeypatch.setattr(planner_mod.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(planner_mod.os, "getloadavg", lambda: (4.2, 0.0, 0.0))
    assert not planner_mod.machine_busy()
    monkeypatch.setattr(planner_mod.os, "getloadavg", lambda: (4.6, 0.0, 0.0))
    assert planner_mod.machine_busy()
