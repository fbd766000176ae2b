"""A mamba seed ensemble as one network: k ``MambaRegressor``s whose every weight carries a
leading member dimension, so each layer is one batched op for all members instead of k small
ones. Live inference (one window) is mostly per-op overhead and gains from it (4 members at
width 64: p50 4.7 -> 3.4 ms); training batches are large enough that the scan's elementwise
arithmetic dominates, and it costs about what the member loop does.

Every parameter is the stack of the members' same-named ``MambaRegressor`` parameters
(``models.grouped``: same names, shape ``(k, *member_shape)``), so it computes what the list
ensemble of the same seeds computes and a list ensemble's checkpoint loads into it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from models.families.mamba import MambaBlock, MambaFamily, causal_conv, patches, selective_scan
from models.grouped import GroupedEnsemble, GroupedLayerNorm, GroupedLinear, per_member
from models.networks import ArchitectureSpec


class GroupedDepthwiseConv(nn.Module):
    """k causal depthwise convolutions; weights shaped as ``nn.Conv1d``'s, (k, C, 1, width)."""

    def __init__(self, k: int, channels: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, channels, 1, width))
        self.bias = nn.Parameter(torch.empty(k, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(k, batch, L, C) -> (k, batch, L, C)."""
        k, _, _, channels = x.shape
        return causal_conv(x, self.weight.view(k, 1, channels, 1, -1), self.bias.view(k, 1, channels, 1))


class GroupedSelectiveScan(nn.Module):
    """k ``SelectiveScan``s: (k, batch, L, d_model) -> (k, batch, L or 1, d_model)."""

    def __init__(self, k: int, d_model: int, d_state: int, d_conv: int, expand: int):
        super().__init__()
        inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = GroupedLinear(k, d_model, 2 * inner)
        self.conv = GroupedDepthwiseConv(k, inner, d_conv)
        self.x_proj = GroupedLinear(k, inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = GroupedLinear(k, self.dt_rank, inner)
        self.A_log = nn.Parameter(torch.empty(k, inner, d_state))
        self.D = nn.Parameter(torch.empty(k, inner))
        self.out_proj = GroupedLinear(k, inner, d_model)

    def forward(self, u: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = nn.functional.silu(self.conv(x))
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = nn.functional.softplus(self.dt_proj(dt))  # (k, batch, L, inner)
        a = -torch.exp(per_member(self.A_log.to(x.dtype), 2))  # (k, 1, 1, inner, N)
        return self.out_proj(selective_scan(x, z, dt, b, c, a, per_member(self.D, 2), newest_only))


class GroupedMambaBlock(nn.Module):
    """k ``MambaBlock``s, (k, batch, L, d_model) in and out (the newest token's alone with
    ``newest_only``)."""

    def __init__(self, k: int, d_model: int, options: dict[str, Any], dropout: float):
        super().__init__()
        sizes = (k, d_model, options["d_state"], options["d_conv"], options["expand"])
        self.norm = GroupedLayerNorm(k, d_model)
        self.forward_scan = GroupedSelectiveScan(*sizes)
        self.backward_scan = GroupedSelectiveScan(*sizes) if options["bidirectional"] else None
        ff = round(options["d_ff_ratio"] * d_model)
        self.ff = (
            nn.Sequential(
                GroupedLayerNorm(k, d_model),
                GroupedLinear(k, d_model, ff),
                nn.GELU(),
                GroupedLinear(k, ff, d_model),
            )
            if ff > 0
            else None
        )
        self.dropout = nn.Dropout(dropout)

    forward = MambaBlock.forward  # the same block, written over any leading dimensions


class GroupedMambaEnsemble(GroupedEnsemble):
    """``spec.members`` mamba regressors from their own seeds, computed as one network."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__(spec)
        k = self.members
        nets = self.seeded_members(seeds)  # first: they refuse what does not build
        options = MambaFamily().options(spec)
        self.patch_len = options["patch_len"]
        self.stride = max(1, round(self.patch_len * options["stride_ratio"]))
        self.embed = GroupedLinear(k, spec.n_features * self.patch_len, spec.hidden_size)
        self.blocks = nn.ModuleList(
            GroupedMambaBlock(k, spec.hidden_size, options, spec.dropout) for _ in range(spec.num_layers)
        )
        self.norm = GroupedLayerNorm(k, spec.hidden_size)
        self.head = GroupedLinear(k, spec.hidden_size, spec.n_outputs)
        self.stack(nets)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """Per block, all members together, input side first: the embedding belongs to the first
        block and the final norm to the last (the head is not backbone), as in ``MambaRegressor``."""
        groups = [list(block.parameters()) for block in self.blocks]
        groups[0] = [*self.embed.parameters(), *groups[0]]
        groups[-1] = [*groups[-1], *self.norm.parameters()]
        return groups

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        tokens = patches(x, self.patch_len, self.stride)
        if x.dim() == 3:  # every member reads the same windows
            tokens = tokens.expand(self.members, *tokens.shape)
        h = self.embed(tokens)  # (k, batch, patches, d_model)
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h, newest_only=depth == len(self.blocks))
        out = self.head(self.norm(h)[..., -1, :])  # (k, batch, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
