"""benchmarks/bench_training.py: the vmapped ensemble binds every random generator to the target device.

On CUDA a generator must live on the device it draws for; a bare ``torch.Generator()``
is a CPU one and fails there. Without a GPU the test records the device every
generator is created with and requires it to be named, and to be the target device.
"""

import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_training  # noqa: E402

from transient_ridge.model import ModelConfig  # noqa: E402


def test_ensemble_binds_every_generator_to_the_device(monkeypatch):
    created = []
    real_generator = torch.Generator

    class RecordingGenerator(real_generator):
        def __new__(cls, device=None):  # None: created without naming a device, i.e. a CPU generator
            created.append(None if device is None else torch.device(device))
            return super().__new__(cls, "cpu" if device is None else device)

    monkeypatch.setattr(torch, "Generator", RecordingGenerator)
    device = torch.device("cpu")
    config = ModelConfig(D=2, K=4, n_layer=1, d_model=8, n_head=2, d_mlp=8)
    rate = bench_training.ensemble_steps_per_second(config, 4, device, steps=2, members=2, warmup=1)
    assert rate > 0 and created
    assert all(d == device for d in created), created


def test_member_tasks_do_not_depend_on_the_device():
    on_cpu = bench_training.member_tasks(3, 4, torch.device("cpu"))
    on_meta = bench_training.member_tasks(3, 4, torch.device("meta"))
    assert [t.device.type for t in on_meta] == ["meta"] * 3
    assert [t.shape for t in on_meta] == [t.shape for t in on_cpu] == [(16, 4)] * 3
    assert not torch.equal(on_cpu[0], on_cpu[1])


def test_stacked_ensemble_trains_each_member_as_its_own_model():
    """The stacked variant times the same computation as the vmapped one: members' predictions agree."""
    from torch.func import stack_module_state

    from transient_ridge.model import InContextRegressionTransformer, stacked_forward

    config = ModelConfig(D=2, K=4, n_layer=2, d_model=8, n_head=2, d_mlp=8)
    torch.manual_seed(0)
    models = [InContextRegressionTransformer(config) for _ in range(3)]
    params, _ = stack_module_state(models)
    x, y = torch.randn(3, 5, 4, 2), torch.randn(3, 5, 4)
    stacked = stacked_forward(config, params, x, y)
    alone = torch.stack([m(x[i], y[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(stacked, alone, rtol=1e-5, atol=1e-6)
    assert bench_training.ensemble_steps_per_second(config, 4, torch.device("cpu"), steps=2, members=2, warmup=1,
                                                    stacked=True) > 0
