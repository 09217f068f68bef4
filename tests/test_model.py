"""Model shapes, causality, parameter count; checkpoint round trip and strict loading."""

import pytest
import torch

from transient_ridge.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from transient_ridge.model import InContextRegressionTransformer, ModelConfig, count_parameters, interleave_tokens

SMALL = ModelConfig(D=3, K=5, n_layer=2, d_model=16, n_head=2, d_mlp=32)


def test_tokens_interleave_x_and_y():
    x = torch.arange(12.0).reshape(1, 2, 6)[..., :3].reshape(1, 2, 3)
    y = torch.tensor([[10.0, 20.0]])
    tokens = interleave_tokens(x, y)
    assert tokens.shape == (1, 4, 4)
    assert tokens[0, 0].tolist() == [0.0, *x[0, 0].tolist()]
    assert tokens[0, 1].tolist() == [10.0, 0.0, 0.0, 0.0]
    assert tokens[0, 3].tolist() == [20.0, 0.0, 0.0, 0.0]


def test_output_shape():
    model = InContextRegressionTransformer(SMALL)
    assert model(torch.randn(7, 5, 3), torch.randn(7, 5)).shape == (7, 5)


def test_prediction_k_sees_only_the_prefix():
    """Changing y_k or any later token leaves predictions 1..k unchanged; y_k itself never leaks into ŷ_k."""
    torch.manual_seed(0)
    model = InContextRegressionTransformer(SMALL).eval()
    x, y = torch.randn(4, 5, 3), torch.randn(4, 5)
    base = model(x, y)
    for k in range(5):
        x2, y2 = x.clone(), y.clone()
        y2[:, k:] += 5.0
        if k + 1 < 5:
            x2[:, k + 1 :] -= 3.0
        changed = model(x2, y2)
        torch.testing.assert_close(changed[:, : k + 1], base[:, : k + 1])
        if k + 1 < 5:
            assert not torch.allclose(changed[:, k + 1 :], base[:, k + 1 :])


def test_parameter_count_matches_formula():
    c = SMALL
    width = c.D + 1
    per_block = 2 * 2 * c.d_model + 4 * c.d_model**2 + 4 * c.d_model + 2 * c.d_model * c.d_mlp + c.d_mlp + c.d_model
    expected = width * c.d_model + 2 * c.K * c.d_model + c.n_layer * per_block + 2 * c.d_model + c.d_model * width
    assert count_parameters(InContextRegressionTransformer(c)) == expected


def test_paper_shape_has_about_2_65_million_parameters():
    paper = ModelConfig(D=8, K=16, n_layer=2, d_model=512, n_head=4, d_mlp=256)
    assert abs(count_parameters(InContextRegressionTransformer(paper)) - 2.65e6) < 0.01e6


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(D=2, K=4, n_layer=1, d_model=10, n_head=3, d_mlp=8)


def test_checkpoint_round_trip(tmp_path):
    model = InContextRegressionTransformer(SMALL)
    path = tmp_path / "step_0000010.pt"
    save_checkpoint(path, model, step=10, M=16.0, experiment_config='{"a": 1}')
    loaded, meta = load_checkpoint(path, expected_config=SMALL)
    assert meta["step"] == 10 and meta["M"] == 16.0 and meta["experiment_config"] == '{"a": 1}'
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(FileExistsError):
        save_checkpoint(path, model, step=10, M=16.0, experiment_config="{}")


def test_strict_load_names_the_parameter(tmp_path):
    model = InContextRegressionTransformer(SMALL)
    state = model.state_dict()
    state["blocks.0.mlp.up.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointMismatchError, match=r"blocks\.0\.mlp\.up\.weight"):
        load_state_dict_strict(model, state, "test state")
    del state["blocks.0.mlp.up.weight"]
    with pytest.raises(CheckpointMismatchError, match="missing parameter 'blocks.0.mlp.up.weight'"):
        load_state_dict_strict(model, state, "test state")
    path = tmp_path / "step_0000001.pt"
    save_checkpoint(path, model, step=1, M=1.0, experiment_config="{}")
    other = ModelConfig(D=3, K=5, n_layer=2, d_model=16, n_head=2, d_mlp=64)
    with pytest.raises(CheckpointMismatchError, match="d_mlp"):
        load_checkpoint(path, expected_config=other)


def test_stacked_forward_equals_each_model_on_its_own():
    """C models with their own weights in one batched call give what each model gives alone."""
    config = ModelConfig(D=3, K=5, n_layer=2, d_model=16, n_head=2, d_mlp=24)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(InContextRegressionTransformer(config))
    params = {name: torch.stack([m.state_dict()[name] for m in models]) for name in models[0].state_dict()}
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, config.K, config.D, generator=generator)
    y = torch.randn(3, 4, config.K, generator=generator)
    with torch.no_grad():
        stacked = models[0].forward_stacked(params, x, y)
        for c, model in enumerate(models):
            torch.testing.assert_close(stacked[c], model(x[c], y[c]), rtol=1e-5, atol=1e-5)
