"""Structured compaction of models torch.fx cannot trace: [B, T, C] Linear, attention heads
(GQA included), keyword inputs with argument branches, YOLO-style split / concat, strict and
non-strict, round_to, cost_report on keyword examples."""

import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import n2prune
from n2prune.compact.costs import cost_report
from n2prune.compact.select import (activation_scores, group_scores, lowest_per_layer,
                                    zero_groups)
from n2prune.compact.trace import trace_channel_graph


# ----------------------------------------------------------------------------- models
class Attention(nn.Module):
    """ViT-style attention; ``kv_heads < heads``: grouped-query (K/V heads shared)."""

    def __init__(self, dim=32, heads=4, kv_heads=None):
        super().__init__()
        self.num_heads, self.num_kv_heads = heads, kv_heads or heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, self.num_kv_heads * self.head_dim)
        self.v = nn.Linear(dim, self.num_kv_heads * self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, t, heads):
        B, N, _ = t.shape
        return t.reshape(B, N, heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        B, N, _ = x.shape
        q = self._split(self.q(x), self.num_heads)
        k, v = self._split(self.k(x), self.num_kv_heads), self._split(self.v(x),
                                                                       self.num_kv_heads)
        if self.num_kv_heads != self.num_heads:     # Llama's repeat_kv
            rep = self.num_heads // self.num_kv_heads
            k = k[:, :, None].expand(B, self.num_kv_heads, rep, N, self.head_dim) \
                .reshape(B, self.num_heads, N, self.head_dim)
            v = v[:, :, None].expand(B, self.num_kv_heads, rep, N, self.head_dim) \
                .reshape(B, self.num_heads, N, self.head_dim)
        attn = ((q @ k.transpose(-2, -1)) * self.head_dim ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))


class ViT(nn.Module):
    """Patch embedding, class token, position embedding, pre-norm blocks, keyword input and
    an ``if`` on an argument."""

    def __init__(self, dim=32, heads=4, kv_heads=None, depth=2, tokens=5):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.1)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            block = nn.Module()
            block.norm1, block.attn = nn.LayerNorm(dim), Attention(dim, heads, kv_heads)
            block.norm2 = nn.LayerNorm(dim)
            block.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            self.blocks.append(block)
        self.head = nn.Linear(dim, 10)

    def forward(self, pixels, *, pool=True):
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = x + block.attn(block.norm1(x))
            x = x + block.mlp(block.norm2(x))
        if pool:
            return self.head(x[:, 0])
        return x


class ConvBnAct(nn.Module):
    def __init__(self, c1, c2, k=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class C2f(nn.Module):
    """YOLOv8's split / concat block: cv1's output chunked in two, bottlenecks on the
    second half, everything concatenated into cv2."""

    def __init__(self, c1=3, c2=16, n=2):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = ConvBnAct(c1, 2 * self.c)
        self.cv2 = ConvBnAct((2 + n) * self.c, c2)
        self.m = nn.ModuleList(nn.Sequential(ConvBnAct(self.c, self.c, 3),
                                             ConvBnAct(self.c, self.c, 3)) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(y[-1] + m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def _randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model.eval()


PIXELS = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
TOKENS = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- tests
@torch.no_grad()
def test_linear_on_tokens_is_compacted():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 16)).eval()
    mlp[0].weight[3:9] = 0
    small = n2prune.compact(mlp, TOKENS)
    assert small[0].out_features == 18 and small[2].in_features == 18
    assert torch.allclose(small(TOKENS), mlp(TOKENS), atol=1e-6)
    assert small.compaction["folds"] == {"2": "bias"}   # gelu(bias) of the removed neurons


@pytest.mark.parametrize("kv_heads", [None, 2])
@torch.no_grad()
def test_heads_are_groups_and_the_head_count_follows(kv_heads):
    torch.manual_seed(0)
    model = ViT(kv_heads=kv_heads).eval()
    example = {"pixels": PIXELS, "pool": False}
    graph = trace_channel_graph(model, example)
    heads = [g for g in graph.groups() if not g.fixed and
             g.producers[0][0] == "blocks.0.attn.q"]
    per_q = 8 * (4 // (kv_heads or 4))            # rows of Q tied to one K/V head
    assert len(heads) == (kv_heads or 4)
    assert sorted({n for n, _ in heads[0].producers}) == ["blocks.0.attn.k", "blocks.0.attn.q",
                                                          "blocks.0.attn.v"]
    assert sum(n == "blocks.0.attn.q" for n, _ in heads[0].producers) == per_q
    zero_groups(model, [heads[1]])
    small = n2prune.compact(model, example)
    attn = small.blocks[0].attn
    assert attn.q.out_features == 32 - per_q and attn.proj.in_features == 32 - per_q
    assert attn.num_heads == 4 - per_q // 8
    assert attn.num_kv_heads == (kv_heads or 4) - 1
    assert torch.allclose(small(**example), model(**example), atol=1e-5)
    assert torch.allclose(small(PIXELS), model(PIXELS), atol=1e-5)   # the other branch


@torch.no_grad()
def test_ffn_neurons_and_heads_chosen_by_activations():
    torch.manual_seed(0)
    model = ViT().eval()
    graph = trace_channel_graph(model, PIXELS)
    scores = group_scores(graph, activation_scores(model, [PIXELS]))
    ffn = lowest_per_layer(graph, scores, fraction=0.25, layers="mlp.0")
    heads = lowest_per_layer(graph, scores, count=1, layers="attn.q")
    assert len(ffn) == 2 * 32 and len(heads) == 2
    zero_groups(model, ffn + heads)
    small = n2prune.compact(model, PIXELS)
    assert [b.mlp[0].out_features for b in small.blocks] == [96, 96]
    assert [b.attn.num_heads for b in small.blocks] == [3, 3]
    assert torch.allclose(small(PIXELS), model(PIXELS), atol=1e-5)


@torch.no_grad()
def test_yolo_split_concat_block():
    torch.manual_seed(0)
    model = _randomise_bn(C2f())
    graph = trace_channel_graph(model, PIXELS)
    free = [g for g in graph.groups() if not g.fixed]
    halves = [g for g in free if g.producers[0][0] == "cv1.conv"]
    # chunk(2) ties channel j of both halves; the second half is also the residual stream
    assert len(halves) == 8 and sorted(c for n, c in halves[0].producers if n == "cv1.conv") \
        == [0, 8]
    zero_groups(model, [halves[2]] + [g for g in free if g.producers[0][0] == "m.0.0.conv"][:3])
    small = n2prune.compact(model, PIXELS)
    assert small.cv1.conv.out_channels == 14 and small.m[0][0].conv.out_channels == 5
    assert small.cv2.conv.in_channels == 4 * 7
    assert torch.allclose(small(PIXELS), model(PIXELS), atol=1e-5)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 12), nn.Linear(12, 16)
        self.c, self.d = nn.Linear(16, 12), nn.Linear(12, 4)

    def forward(self, x):
        h = self.b(F.relu(self.a(x)))
        return self.d(self.c(h).roll(1, -1))


@torch.no_grad()
def test_strict_names_the_op_and_the_line():
    with pytest.raises(ValueError, match=r"aten.roll in the model|aten.roll in Mixed") as info:
        n2prune.compact(Mixed().eval(), TOKENS)
    assert "test_compact_structured.py" in str(info.value)
    assert "return self.d(self.c(h).roll(1, -1))" in str(info.value)


@torch.no_grad()
def test_not_strict_compacts_the_rest_and_says_what_it_left():
    torch.manual_seed(0)
    model = Mixed().eval()
    model.a.weight[:4] = 0
    model.c.weight[:4] = 0
    with pytest.warns(UserWarning, match=r"aten.roll .*layers left alone: c"):
        small = n2prune.compact(model, TOKENS, strict=False)
    assert small.a.out_features == 8 and small.c.out_features == 12
    assert small.compaction["left_alone"][0]["layers"] == ["c"]
    assert torch.allclose(small(TOKENS), model(TOKENS), atol=1e-6)


@pytest.mark.parametrize("round_to, width", [(1, 7), (4, 8), (8, 8), (16, 12)])
@torch.no_grad()
def test_round_to_keeps_multiples(round_to, width):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 16)).eval()
    mlp[0].weight[:5] = 0
    small = n2prune.compact(mlp, TOKENS, round_to=round_to)
    assert small[0].out_features == width    # 12 is the full width: no multiple of 16 fits
    assert torch.allclose(small(TOKENS), mlp(TOKENS), atol=1e-6)
    with pytest.raises(ValueError, match="round_to must be a positive integer"):
        n2prune.compact(mlp, TOKENS, round_to=0)


def test_cost_report_takes_keyword_examples_and_strict():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 4)

        def forward(self, x, scale=1.0):
            y = self.a(x)[:, None, :, None]      # unsqueezes: fx-era cost_report failed
            return self.b(y[:, 0, :, 0] * scale).cumprod(-1)
    model = Odd().eval()
    with torch.no_grad():
        model.a.weight[:2] = 0
    example = {"x": TOKENS[:, 0], "scale": 2.0}
    with pytest.raises(ValueError, match="aten.cumprod"):
        cost_report(model, example=example, latency=False)
    report = cost_report(model, example=example, strict=False, repeats=2, min_seconds=0.001)
    assert report["dense"]["macs"] == 2 * (16 * 8 + 8 * 4)
    assert report["compacted"]["macs"] == 2 * (16 * 6 + 6 * 4)
    assert all(row["latency_ms"] > 0 for row in report.values())


def test_readme_costs_snippet_needs_only_import_n2prune():
    code = "import n2prune; print(callable(n2prune.compact.costs.cost_report))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
