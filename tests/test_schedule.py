"""Checkpoint schedule against a plain loop and the paper's count; learning-rate schedules."""

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from transient_ridge.config import ScheduleConfig
from transient_ridge.schedule import checkpoint_steps, learning_rate, log_spaced_subset, weight_steps


def checkpoint_steps_loop(T, interval, N):
    """Exact reference: T^(j/(N-1)) in 60-digit decimal arithmetic, then floor."""
    getcontext().prec = 60
    steps = set(range(0, T + 1, interval)) | {T}
    log_T = Decimal(T).ln()
    for j in range(N):
        steps.add(math.floor((log_T * j / (N - 1)).exp() + Decimal("1e-40")))
    return sorted(steps)


def test_paper_schedule_has_2203_steps():
    steps = checkpoint_steps(150_000, 100, 1000)
    assert len(steps) == 2203
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 150_000


@pytest.mark.parametrize("T, interval, N", [(150_000, 100, 1000), (3000, 100, 60), (40, 10, 5), (1000, 7, 50)])
def test_schedule_matches_loop(T, interval, N):
    assert checkpoint_steps(T, interval, N).tolist() == checkpoint_steps_loop(T, interval, N)


def test_weight_steps_keep_every_nth_and_last():
    steps = np.array([0, 1, 2, 5, 10, 20, 30])
    assert weight_steps(steps, 3).tolist() == [0, 5, 30]
    assert weight_steps(steps, 1).tolist() == steps.tolist()


def test_log_spaced_subset_includes_last_and_is_subset():
    steps = checkpoint_steps(3000, 100, 60)
    subset = log_spaced_subset(steps, 6)
    assert subset[-1] == 3000 and set(subset) <= set(steps) and 2 <= len(subset) <= 6


def test_learning_rate_schedules():
    warm = ScheduleConfig(kind="warmup_constant", warmup_steps=10)
    assert learning_rate(0, 100, 1.0, warm) == pytest.approx(0.1)
    assert learning_rate(9, 100, 1.0, warm) == pytest.approx(1.0)
    assert learning_rate(50, 100, 1.0, warm) == 1.0
    cycle = ScheduleConfig(kind="one_cycle", pct_start=0.5, final_lr_fraction=0.0)
    values = [learning_rate(s, 100, 1.0, cycle) for s in range(100)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0)
    assert int(np.argmax(values)) == 50 and values[-1] < 0.01
    assert learning_rate(5, 100, 0.3, ScheduleConfig(kind="constant")) == 0.3
