"""The batched ensemble computes what the package model and torch's Adam compute, member by member."""

import math

import pytest
import torch

from transient_ridge.ensemble import EnsembleAdam, EnsembleTransformer, sample_ensemble_batch
from transient_ridge.model import InContextRegressionTransformer, ModelConfig

CONFIG = ModelConfig(D=3, K=5, n_layer=2, d_model=16, n_head=2, d_mlp=24)


def _member_model(ensemble: EnsembleTransformer, member: int) -> InContextRegressionTransformer:
    model = InContextRegressionTransformer(CONFIG)
    model.load_state_dict(ensemble.member_state_dict(member))
    return model


def test_members_start_from_the_pipeline_init_of_their_seed():
    ensemble = EnsembleTransformer(CONFIG, init_seeds=[7, 11])
    torch.manual_seed(11)
    reference = InContextRegressionTransformer(CONFIG).state_dict()
    for name, value in ensemble.member_state_dict(1).items():
        torch.testing.assert_close(value, reference[name], rtol=0, atol=0)


def test_forward_equals_the_package_model_per_member():
    ensemble = EnsembleTransformer(CONFIG, init_seeds=[1, 2, 3])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, CONFIG.K, CONFIG.D, generator=generator)
    y = torch.randn(3, 4, CONFIG.K, generator=generator)
    with torch.no_grad():
        batched = ensemble(x, y)
        for member in range(3):
            single = _member_model(ensemble, member)(x[member], y[member])
            torch.testing.assert_close(batched[member], single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decoupled", [False, True])
def test_optimizer_steps_equal_torch_adam_per_member(decoupled):
    ensemble = EnsembleTransformer(CONFIG, init_seeds=[4, 5])
    lrs, decays = [1e-2, 3e-3], [0.0, 0.5]
    optimizer = EnsembleAdam(ensemble.flat, torch.tensor(decays), torch.tensor([decoupled] * 2))
    references = []
    for member in range(2):
        model = _member_model(ensemble, member)
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        references.append((model, cls(model.parameters(), lr=lrs[member], weight_decay=decays[member])))
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(2, 6, CONFIG.K, CONFIG.D, generator=generator)
        y = torch.randn(2, 6, CONFIG.K, generator=generator)
        torch.mean((ensemble(x, y) - y) ** 2, dim=(1, 2)).sum().backward()
        optimizer.step(torch.tensor(lrs))
        for member, (model, reference_optimizer) in enumerate(references):
            reference_optimizer.zero_grad()
            torch.mean((model(x[member], y[member]) - y[member]) ** 2).backward()
            reference_optimizer.step()
    d = CONFIG.d_model
    for member, (model, _) in enumerate(references):
        for name, value in ensemble.member_state_dict(member).items():
            expected = model.state_dict()[name]
            if name.endswith("attn.qkv.bias"):
                # the key bias has a gradient of exactly zero in exact arithmetic (softmax is
                # shift-invariant), so Adam turns float rounding into full-size steps there
                value, expected = torch.cat([value[:d], value[2 * d :]]), torch.cat([expected[:d], expected[2 * d :]])
            torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-6)


def test_batches_draw_each_member_from_its_own_task_set():
    tasks = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    M = torch.tensor([1.0, 3.0, math.inf])
    x, y = sample_ensemble_batch(
        tasks, M, batch_size=4000, K=6, noise_variance=0.0, generator=torch.Generator().manual_seed(2)
    )
    assert x.shape == (3, 4000, 6, 2) and y.shape == (3, 4000, 6)
    # noise-free: each sequence's task solves its own least squares exactly
    solved = torch.linalg.lstsq(x, y[..., None]).solution[..., 0]  # (E, B, D)
    distance = torch.cdist(solved, tasks[None].expand(3, -1, -1))  # (E, B, 10)
    nearest = distance.min(dim=-1)
    assert torch.all(nearest.values[0] < 1e-3) and torch.all(nearest.indices[0] == 0)
    assert torch.all(nearest.values[1] < 1e-3) and set(nearest.indices[1].tolist()) == {0, 1, 2}
    assert torch.median(nearest.values[2]) > 0.1  # fresh Gaussian tasks, not from the set
