"""A mamba seed ensemble as one network: k ``MambaRegressor``s whose every weight carries a
leading member dimension, so each layer is one batched op for all members instead of k small
ones. Live inference (one window) is mostly per-op overhead and gains from it (4 members at
width 64: p50 4.7 -> 3.4 ms); training batches are large enough that the scan's elementwise
arithmetic dominates, and it costs about what the member loop does.

Every parameter is the stack of the members' same-named ``MambaRegressor`` parameters (same
names, shape ``(k, *member_shape)``): members are built from their seeds as the list ensemble
builds them and stacked, so both compute the same thing, and a list ensemble's checkpoint
(``nets.{m}.*``) loads into this one unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from models.ensemble import SeedEnsemble, member_seeds
from models.families.mamba import MambaFamily, MambaRegressor, causal_conv, patches, selective_scan
from models.networks import ArchitectureSpec


def _per_member(param: torch.Tensor, middle: int) -> torch.Tensor:
    """A (k, ...) parameter viewed as (k, 1 x ``middle``, ...): it broadcasts over an
    activation's batch (and time) dimensions."""
    return param.view(param.shape[0], *[1] * middle, *param.shape[1:])


class GroupedLinear(nn.Module):
    """k ``nn.Linear``s as one ``baddbmm``: (k, ..., n_in) -> (k, ..., n_out)."""

    def __init__(self, k: int, n_in: int, n_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, n_out, n_in))
        self.bias = nn.Parameter(torch.empty(k, n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        weight = self.weight.transpose(1, 2)
        out = (
            torch.bmm(flat, weight)
            if self.bias is None
            else torch.baddbmm(self.bias.unsqueeze(1), flat, weight)
        )
        return out.view(*x.shape[:-1], -1)


class GroupedLayerNorm(nn.Module):
    """k ``nn.LayerNorm``s: one normalization, then each member's scale and shift."""

    def __init__(self, k: int, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(k, d))
        self.bias = nn.Parameter(torch.empty(k, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return torch.addcmul(
            _per_member(self.bias, x.dim() - 2), normed, _per_member(self.weight, x.dim() - 2)
        )


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
        a = -torch.exp(_per_member(self.A_log.to(x.dtype), 2))  # (k, 1, 1, inner, N)
        return self.out_proj(selective_scan(x, z, dt, b, c, a, _per_member(self.D, 2), newest_only))


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

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        normed = self.norm(h)
        mixed = self.forward_scan(normed, newest_only)
        if self.backward_scan is not None:
            # the newest token starts the backward scan: its output sees only itself
            backward = normed[..., -1:, :] if newest_only else normed.flip(-2)
            mixed = mixed + self.backward_scan(backward).flip(-2)
        h = (h[..., -1:, :] if newest_only else h) + self.dropout(mixed)
        return h if self.ff is None else h + self.dropout(self.ff(h))


class GroupedMambaEnsemble(SeedEnsemble):
    """``spec.members`` mamba regressors from their own seeds, computed as one network."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__()
        k = self.members = spec.members
        self.member_spec = replace(spec, members=1)
        self.member_options = MambaFamily().options(spec)
        nets = self._seeded_members(seeds or member_seeds(0, k))
        self.patch_len, self.stride = nets[0].patch_len, nets[0].stride
        self.embed = GroupedLinear(k, nets[0].embed.in_features, spec.hidden_size)
        self.blocks = nn.ModuleList(
            GroupedMambaBlock(k, spec.hidden_size, self.member_options, spec.dropout)
            for _ in range(spec.num_layers)
        )
        self.norm = GroupedLayerNorm(k, spec.hidden_size)
        self.head = GroupedLinear(k, spec.hidden_size, spec.n_outputs)
        self.register_load_state_dict_pre_hook(_stack_list_ensemble_state)
        self._stack(nets)

    def reset_members(self, seeds: list[int]) -> None:
        """Member m becomes the network ``torch.manual_seed(seeds[m])`` builds."""
        self._stack(self._seeded_members(seeds))

    def _seeded_members(self, seeds: list[int]) -> list[MambaRegressor]:
        """Each member built under its own seed, exactly as a list ensemble builds it."""
        if len(seeds) != self.members:
            raise ValueError(f"{len(seeds)} seeds for {self.members} members")
        nets = []
        for seed in seeds:
            torch.manual_seed(seed)
            nets.append(MambaRegressor(self.member_spec, self.member_options))
        return nets

    @torch.no_grad()
    def _stack(self, nets: list[MambaRegressor]) -> None:
        states = [net.state_dict() for net in nets]
        self.load_state_dict({name: torch.stack([s[name] for s in states]) for name in states[0]})

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """Per block, all members together, input side first: the embedding belongs to the first
        block and the final norm to the last (the head is not backbone), as in ``MambaRegressor``."""
        groups = [list(block.parameters()) for block in self.blocks]
        groups[0] = [*self.embed.parameters(), *groups[0]]
        groups[-1] = [*groups[-1], *self.norm.parameters()]
        return groups

    def member_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        tokens = patches(x, self.patch_len, self.stride)
        if x.dim() == 3:  # every member reads the same windows
            tokens = tokens.expand(self.members, *tokens.shape)
        h = self.embed(tokens)  # (k, batch, patches, d_model)
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h, newest_only=depth == len(self.blocks))
        out = self.head(self.norm(h)[..., -1, :])  # (k, batch, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


_LIST_MEMBER = re.compile(r"nets\.(\d+)\.(.+)")


def _stack_list_ensemble_state(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """A ``ModuleListEnsemble`` checkpoint (``nets.{m}.name``, saved before mamba ensembles were
    grouped) as this one's ``name`` = the members' tensors stacked, so deployed models load."""
    members: dict[str, dict[int, torch.Tensor]] = {}
    for key in [k for k in state if k.startswith(prefix)]:
        match = _LIST_MEMBER.fullmatch(key[len(prefix) :])
        if match:
            members.setdefault(match[2], {})[int(match[1])] = state.pop(key)
    for name, tensors in members.items():
        state[prefix + name] = torch.stack([tensors[m] for m in sorted(tensors)])
