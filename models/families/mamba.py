"""A selective state-space forecaster (Mamba, Gu & Dao 2023, Algorithm 2), in plain torch for
the CPU, with the Bi-Mamba options users bring: a backward scan and PatchTST-style patching.

Each block mixes the sequence with a selective scan: the input is projected to ``expand *
d_model`` channels and a gate; a causal depthwise convolution (``d_conv``) and SiLU follow; the
step size Δ, B and C are functions of the input (this is what makes it *selective*); with
A = -exp(A_log) the state is discretized as h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t and read out
as y_t = C_t h_t + D x_t, gated by SiLU(z). The scan is a loop over the (patched) time steps:
sequences here are tens of steps, where a loop is as fast as a parallel scan and exact.

The head reads only the newest token, so the last block computes only that token's output: its
forward scan keeps the final state alone, and its backward scan, whose first step that token
is, needs nothing but the token itself. Exact, and a third less work at two layers.

``bidirectional`` adds a second scan over the reversed sequence with its own weights (Bi-Mamba);
``patch_len`` groups bars into tokens, with stride ``max(1, round(patch_len * stride_ratio))``,
aligned so the newest bar is always in the last patch.

A seed ensemble of k members is one network with a member dimension on every weight
(``grouped_mamba.GroupedMambaEnsemble``); the scan, the convolution and the patching below are
written over any leading dimensions so both use the same code.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from models.families.base import ModelFamily
from models.families.schema import HyperParam, IncompatibleHyperparametersError
from models.networks import ArchitectureSpec


class SelectiveScan(nn.Module):
    """One Mamba mixer: (batch, L, d_model) -> (batch, L, d_model)."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int):
        super().__init__()
        inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        with torch.no_grad():  # Δ starts in [1e-3, 1e-1] (log-uniform), as in the paper
            dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1
        # S4D-real initialization: A = -(1, 2, ..., N) for every channel
        self.A_log = nn.Parameter(
            torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1)
        )
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, d_model)

    def causal_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``self.conv`` (depthwise, causal) on (batch, L, inner)."""
        assert self.conv.bias is not None
        return causal_conv(x, self.conv.weight, self.conv.bias.unsqueeze(-1))

    def forward(self, u: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """(batch, L, d_model); with ``newest_only``, (batch, 1, d_model): the last step's alone."""
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = nn.functional.silu(self.causal_conv(x))
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = nn.functional.softplus(self.dt_proj(dt))  # (batch, L, inner)
        a = -torch.exp(self.A_log.to(x.dtype))  # (inner, N)
        return self.out_proj(selective_scan(x, z, dt, b, c, a, self.D, newest_only))


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A causal depthwise convolution of (..., L, C) as one windowed product (``weight``
    broadcast to (..., C, L, width), ``bias`` to (..., C, L)): torch's float64 CPU path runs a
    depthwise ``Conv1d`` one channel at a time, 20x slower at these sizes."""
    width = weight.shape[-1]
    padded = nn.functional.pad(x.transpose(-1, -2), (width - 1, 0))  # (..., C, width-1+L)
    windows = padded.unfold(-1, width, 1)  # (..., C, L, width)
    return ((windows * weight).sum(-1) + bias).transpose(-1, -2)


def selective_scan(
    x: torch.Tensor,
    z: torch.Tensor,
    dt: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    a: torch.Tensor,
    d: torch.Tensor,
    newest_only: bool,
) -> torch.Tensor:
    """The scan and its gate, over any leading dimensions (one network's batch, or members and
    batch): x, z, Δ (..., L, inner); B, C (..., L, N); ``a`` (= A) broadcast to (..., L, inner,
    N) and ``d`` to (..., L, inner). With ``newest_only``, the last step's output alone."""
    decay = torch.exp(dt.unsqueeze(-1) * a)  # (..., L, inner, N)
    drive = (dt * x).unsqueeze(-1) * b.unsqueeze(-2)  # Δ B x
    h = x.new_zeros(*x.shape[:-2], x.shape[-1], b.shape[-1])
    # unbind, not index: indexing one step's slice has a backward that fills a zero tensor
    # of the whole sequence per step; one fused op per step after that
    steps = zip(decay.unbind(-3), drive.unbind(-3), strict=True)
    if newest_only:
        for decay_t, drive_t in steps:
            h = torch.addcmul(drive_t, decay_t, h)
        y = (h * c[..., -1, :].unsqueeze(-2)).sum(-1).unsqueeze(-2) + x[..., -1:, :] * d
        return y * nn.functional.silu(z[..., -1:, :])
    states = []
    for decay_t, drive_t in steps:
        h = torch.addcmul(drive_t, decay_t, h)
        states.append(h)
    y = (torch.stack(states, dim=-3) * c.unsqueeze(-2)).sum(-1) + x * d
    return y * nn.functional.silu(z)


class MambaBlock(nn.Module):
    """Pre-norm residual mixer (forward, plus backward when bidirectional), then an optional
    feed-forward (``d_ff_ratio`` > 0) as in Bi-Mamba+."""

    def __init__(self, d_model: int, options: dict[str, Any], dropout: float):
        super().__init__()
        sizes = (d_model, options["d_state"], options["d_conv"], options["expand"])
        self.norm = nn.LayerNorm(d_model)
        self.forward_scan = SelectiveScan(*sizes)
        self.backward_scan = SelectiveScan(*sizes) if options["bidirectional"] else None
        ff = round(options["d_ff_ratio"] * d_model)
        self.ff = (
            nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))
            if ff > 0
            else None
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """(..., L, d_model); with ``newest_only``, the newest token's output, (..., 1, d_model).
        Any leading dimensions: the grouped block (members first) runs this same code."""
        normed = self.norm(h)
        mixed = self.forward_scan(normed, newest_only)
        if self.backward_scan is not None:
            # the newest token starts the backward scan: its output sees only itself
            backward = normed[..., -1:, :] if newest_only else normed.flip(-2)
            mixed = mixed + self.backward_scan(backward).flip(-2)
        h = (h[..., -1:, :] if newest_only else h) + self.dropout(mixed)
        return h if self.ff is None else h + self.dropout(self.ff(h))


class MambaRegressor(nn.Module):
    def __init__(self, spec: ArchitectureSpec, options: dict[str, Any]):
        super().__init__()
        self.patch_len = options["patch_len"]
        if self.patch_len > spec.seq_len:
            raise IncompatibleHyperparametersError(
                f"mamba: patch_len {self.patch_len} is longer than seq_len {spec.seq_len}"
            )
        self.stride = max(1, round(self.patch_len * options["stride_ratio"]))
        self.seq_len = spec.seq_len
        self.embed = nn.Linear(spec.n_features * self.patch_len, spec.hidden_size)
        self.blocks = nn.ModuleList(
            MambaBlock(spec.hidden_size, options, spec.dropout) for _ in range(spec.num_layers)
        )
        self.norm = nn.LayerNorm(spec.hidden_size)
        self.head = nn.Linear(spec.hidden_size, spec.n_outputs)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, T, F) -> (batch, patches, F * patch_len); the oldest bars that do not fill a
        stride are dropped, never the newest."""
        return patches(x, self.patch_len, self.stride)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """The blocks' parameters, input side first: the embedding belongs to the first block and
        the final norm to the last (the head is not backbone)."""
        groups = [list(block.parameters()) for block in self.blocks]
        groups[0] = [*self.embed.parameters(), *groups[0]]
        groups[-1] = [*groups[-1], *self.norm.parameters()]
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(self.patches(x))
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h, newest_only=depth == len(self.blocks))
        out = self.head(self.norm(h)[:, -1, :])
        return out.squeeze(-1) if out.shape[-1] == 1 else out


def patches(x: torch.Tensor, patch_len: int, stride: int) -> torch.Tensor:
    """(..., T, F) -> (..., patches, F * patch_len), the newest bar in the last patch."""
    x = x[..., (x.shape[-2] - patch_len) % stride :, :]
    return x.unfold(-2, patch_len, stride).flatten(-2)  # unfold: (..., P, F, patch_len)


class MambaFamily(ModelFamily):
    name = "mamba"
    schema = (
        HyperParam("d_state", int, 8, 1, 256, doc="state size N per channel"),
        HyperParam("d_conv", int, 4, 1, 16, doc="causal depthwise convolution width"),
        HyperParam("expand", int, 2, 1, 8, doc="inner channels / d_model"),
        HyperParam("bidirectional", bool, False, doc="add a backward scan (Bi-Mamba)"),
        HyperParam("d_ff_ratio", float, 0.0, 0.0, 8.0, doc="feed-forward width / d_model; 0: none"),
        HyperParam("patch_len", int, 1, 1, 64, doc="bars per token; 1: no patching"),
        HyperParam("stride_ratio", float, 1.0, 0.1, 1.0, doc="patch stride / patch_len"),
    )
    aliases: ClassVar[dict[str, str]] = {
        "d_model": "hidden_size",
        "n_layers": "num_layers",
        "drop_rate": "dropout",
    }
    shape_params = (
        "hidden_size",
        "num_layers",
        "seq_len",
        "d_state",
        "d_conv",
        "expand",
        "bidirectional",
        "d_ff_ratio",
        "patch_len",
    )

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return MambaRegressor(spec, self.options(spec))

    def build_ensemble(self, spec: ArchitectureSpec, seeds: list[int] | None) -> nn.Module:
        """k seeds as one grouped network: a batched op per layer, not k small ones."""
        from models.families.grouped_mamba import GroupedMambaEnsemble

        return GroupedMambaEnsemble(spec, seeds)
