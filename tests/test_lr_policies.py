import math

import pytest

from n2prune.solvers.lr_policies import (LR_POLICIES, LRParams, learning_rate, lr_step, next_it,
                                 step_changed, stimuli_seen)


def lr(it, p, iteration_size=1, batch_size=32):
    return learning_rate(it, iteration_size, batch_size, p)


def test_registry_holds_the_seven_n2d2_spellings():
    assert {"None", "StepDecay", "ExponentialDecay", "InvTDecay", "PolyDecay", "InvDecay",
            "CosineDecay"} <= set(LR_POLICIES.names())  # plug-ins may add more


def test_unknown_policy_suggests_the_spelling():
    with pytest.raises(ValueError, match=r"'StepDecy'; did you mean 'StepDecay'"):
        lr(0, LRParams(lr_policy="StepDecy"))


def test_none_is_constant_whatever_the_counters():
    p = LRParams(learning_rate=0.05)
    assert [lr(it, p) for it in (0, 1, 10 ** 6)] == [0.05, 0.05, 0.05]


def test_step_decay_decays_once_per_epoch_of_stimuli_with_b32():
    # LeNet.ini: LearningRateStepSize=[sp]_EpochSize (60000), LearningRateDecay=0.993
    p = LRParams(learning_rate=0.05, lr_policy="StepDecay", learning_rate_step_size=60000,
                 learning_rate_decay=0.993)
    assert lr(0, p) == 0.05
    assert lr(1874, p) == 0.05                  # 59968 stimuli
    assert lr(1875, p) == 0.05 * 0.993          # 60000 stimuli: step 1
    assert lr(3749, p) == 0.05 * 0.993          # 119968
    assert lr(3750, p) == 0.05 * 0.993 ** 2     # 120000: step 2


def test_step_counts_iteration_size_times_batch_stimuli_per_update():
    p = LRParams(learning_rate=1.0, lr_policy="StepDecay", learning_rate_step_size=128,
                 learning_rate_decay=0.5)
    assert [lr(it, p, iteration_size=2) for it in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_exponential_decay():
    p = LRParams(learning_rate=0.1, lr_policy="ExponentialDecay", learning_rate_step_size=64,
                 learning_rate_decay=0.2)
    assert lr(1, p) == 0.1                           # step 0
    assert lr(2, p) == 0.1 * math.exp(-0.2 * 1)      # 64 stimuli
    assert lr(7, p) == 0.1 * math.exp(-0.2 * 3)      # 224 stimuli -> step 3


def test_inv_t_decay():
    p = LRParams(learning_rate=0.1, lr_policy="InvTDecay", learning_rate_step_size=32,
                 learning_rate_decay=0.5)
    assert lr(0, p) == 0.1
    assert lr(1, p) == 0.1 * (1.0 / 1.5)
    assert lr(4, p) == 0.1 * (1.0 / 3.0)


def test_inv_decay_counts_updates_not_stimuli():
    p = LRParams(learning_rate=0.1, lr_policy="InvDecay", learning_rate_decay=0.5, power=2.0)
    assert lr(3, p, batch_size=32) == lr(3, p, batch_size=1) == 0.1 * 2.5 ** -2.0
    assert lr(0, p) == 0.1


def test_poly_decay_counts_updates():
    p = LRParams(learning_rate=0.1, lr_policy="PolyDecay", max_iterations=4, power=1.0)
    assert [lr(it, p) for it in range(5)] == [0.1, 0.1 * 0.75, 0.1 * 0.5, 0.1 * 0.25, 0.0]
    p2 = LRParams(learning_rate=0.1, lr_policy="PolyDecay", max_iterations=4, power=2.0)
    assert lr(2, p2) == 0.1 * 0.25


def test_poly_decay_power_zero_is_constant_even_at_the_end():
    p = LRParams(learning_rate=0.1, lr_policy="PolyDecay", max_iterations=4, power=0.0)
    assert lr(4, p) == 0.1   # pow(0, 0) == 1 in C++ too


def test_poly_decay_without_max_iterations_is_refused():
    with pytest.raises(ValueError, match=r"max_iterations=0: must be > 0 for the PolyDecay"):
        lr(0, LRParams(lr_policy="PolyDecay"))


def test_it_stops_at_max_iterations_so_poly_decay_stays_at_zero():
    assert next_it(3, 4) == 4
    assert next_it(4, 4) == 4
    assert next_it(10, 0) == 11
    p = LRParams(learning_rate=0.1, lr_policy="PolyDecay", max_iterations=4, power=1.0)
    it = 0
    for _ in range(7):
        it = next_it(it, p.max_iterations)
    assert it == 4 and lr(it, p) == 0.0


def test_cosine_warm_up_then_cosine_down_to_min_decay():
    # B=1, step size 1: step == it. Warm-up 4 steps from 25 %, cosine over 12-4 steps.
    p = LRParams(learning_rate=1.0, lr_policy="CosineDecay", warm_up_duration=4,
                 warm_up_lr_frac=0.25, max_iterations=12, min_decay=0.1)
    assert lr(0, p, batch_size=1) == 0.25
    assert lr(2, p, batch_size=1) == 0.75 * 2 / 4 + 0.25
    assert lr(4, p, batch_size=1) == 1.0                      # s = 0: cos(0)
    assert lr(8, p, batch_size=1) == pytest.approx(0.9 * 0.5 + 0.1, rel=1e-15)
    assert lr(12, p, batch_size=1) == pytest.approx(0.1, rel=1e-15)   # cos(pi): the floor
    assert lr(16, p, batch_size=1) == pytest.approx(0.55, rel=1e-15)  # and up again


def test_cosine_counts_steps_in_stimuli():
    p = LRParams(learning_rate=1.0, lr_policy="CosineDecay", max_iterations=640)
    assert lr(10, p, batch_size=32) == pytest.approx(0.5 * (1 + math.cos(math.pi * 320 / 640)),
                                                     rel=1e-15)
    assert lr(20, p, batch_size=32) == 0.0          # step 640: cos(pi) -> 0


def test_cosine_edge_cases_follow_the_cxx_arithmetic():
    # MaxIterations == WarmUpDuration: 0/0 -> NaN, and std::max(0.0, NaN) is 0.0
    p = LRParams(learning_rate=1.0, lr_policy="CosineDecay", warm_up_duration=5,
                 max_iterations=5)
    assert lr(5, p, batch_size=1) == 0.0
    # MaxIterations < WarmUpDuration: the uint64 difference wraps, the cosine stays ~1
    p = LRParams(learning_rate=1.0, lr_policy="CosineDecay", warm_up_duration=5,
                 max_iterations=0)
    assert lr(100, p, batch_size=1) == 1.0


def test_stimuli_are_counted_with_32_bit_unsigned_wraparound():
    assert stimuli_seen(2 ** 27 - 1, 1, 32) == 2 ** 32 - 32
    assert stimuli_seen(2 ** 27, 1, 32) == 0
    assert stimuli_seen(134217729, 1, 33) == 134217761   # 4429185057 - 2**32
    assert stimuli_seen(3, 2, 32) == 192
    p = LRParams(learning_rate=1.0, lr_policy="StepDecay", learning_rate_step_size=2 ** 31,
                 learning_rate_decay=0.5)
    assert lr(2 ** 26, p) == 0.5            # 2**31 stimuli: step 1
    assert lr(2 ** 27, p) == 1.0            # 2**32 wraps to 0: step 0 again


def test_step_is_floor_division_and_refuses_step_size_zero():
    assert lr_step(59999, 60000) == 0 and lr_step(60000, 60000) == 1
    with pytest.raises(ValueError, match=r"learning_rate_step_size=0: must be > 0"):
        lr_step(10, 0)
    with pytest.raises(ValueError, match="must be > 0"):
        lr(1, LRParams(lr_policy="ExponentialDecay", learning_rate_step_size=0))


def test_step_changed_marks_n2d2_log_lines_for_step_policies_only():
    p = LRParams(lr_policy="StepDecay", learning_rate_step_size=64)
    assert [step_changed(it, 1, 32, p) for it in range(5)] == [False, False, True, False, True]
    assert not step_changed(2, 1, 32, LRParams(lr_policy="PolyDecay", max_iterations=9))
