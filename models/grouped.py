"""What every grouped seed ensemble shares: layers whose weights carry a leading member
dimension (one batched op serves all k members, where live inference of k small networks is
mostly per-op overhead), and the members-from-their-seeds-then-stacked construction.

A grouped ensemble's parameters have the names of its family's single network and shape
``(k, *member_shape)``: member m's weights are ``param[m]``. Members are built from their seeds
as single networks, exactly as a ``ModuleListEnsemble`` builds them, and their state dicts
stacked, so grouped and list ensembles of the same seeds compute the same thing, and a list
ensemble's checkpoint (``nets.{m}.*``) loads into the grouped one unchanged.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from models.ensemble import SeedEnsemble, member_seeds
from models.networks import ArchitectureSpec, build_single


def per_member(param: torch.Tensor, middle: int) -> torch.Tensor:
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
        return grouped_linear(x, self.weight, self.bias)


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(k, ..., n_in) times a (k, n_out, n_in) weight plus a (k, n_out) bias, as one bmm."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    transposed = weight.transpose(1, 2)
    out = torch.bmm(flat, transposed) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, transposed)
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
        return torch.addcmul(per_member(self.bias, x.dim() - 2), normed, per_member(self.weight, x.dim() - 2))


class GroupedMultiheadAttention(nn.Module):
    """k ``nn.MultiheadAttention``s (``batch_first`` self-attention), parameters named and shaped
    as theirs: projections grouped, then members folded into the batch for one
    ``scaled_dot_product_attention`` (attention itself has no weights)."""

    def __init__(self, k: int, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.nhead = nhead
        self.dropout = dropout  # on the attention weights, as nn.MultiheadAttention's
        self.in_proj_weight = nn.Parameter(torch.empty(k, 3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(k, 3 * d_model))
        # the key bias adds q . b_k to every score of a query, which softmax ignores: left out,
        # the output is the same and its gradient exactly 0, where it was rounding noise that
        # Adam (dividing by its size) turned into full-rate steps, and float32 training diverged
        self.without_key_bias: torch.Tensor
        mask = torch.ones(3, d_model)
        mask[1] = 0.0
        self.register_buffer("without_key_bias", mask.view(1, -1), persistent=False)
        self.out_proj = GroupedLinear(k, d_model, d_model)

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """(k, batch, L, d_model) -> the same, or (k, batch, 1, d_model) for the newest token's
        query alone with ``newest_only``."""
        k, batch, _, d_model = h.shape
        bias = self.in_proj_bias * self.without_key_bias
        query, key, value = grouped_linear(h, self.in_proj_weight, bias).chunk(3, dim=-1)
        if newest_only:
            query = query[..., -1:, :]

        def heads(t: torch.Tensor) -> torch.Tensor:  # (k * batch, nhead, L, head_dim)
            return t.reshape(k * batch, t.shape[2], self.nhead, d_model // self.nhead).transpose(1, 2)

        attended = nn.functional.scaled_dot_product_attention(
            heads(query), heads(key), heads(value), dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(attended.transpose(1, 2).reshape(k, batch, -1, d_model))


class GroupedEnsemble(SeedEnsemble):
    """Base of the grouped ensembles: a subclass's ``__init__`` builds ``seeded_members`` first
    (a single network refuses options it cannot build, with its own message), then its grouped
    layers, named as the single network's, and ends with ``self.stack`` of those members."""

    def __init__(self, spec: ArchitectureSpec):
        super().__init__()
        self.members = spec.members
        self.member_spec = replace(spec, members=1)
        self.register_load_state_dict_pre_hook(stack_list_ensemble_state)

    def seeded_members(self, seeds: list[int] | None) -> list[nn.Module]:
        """Each member built under its own seed, exactly as a list ensemble builds it."""
        seeds = seeds or member_seeds(0, self.members)
        if len(seeds) != self.members:
            raise ValueError(f"{len(seeds)} seeds for {self.members} members")
        nets = []
        for seed in seeds:
            torch.manual_seed(seed)
            nets.append(build_single(self.member_spec))
        return nets

    def reset_members(self, seeds: list[int] | None) -> None:
        """Member m becomes the network ``torch.manual_seed(seeds[m])`` builds."""
        self.stack(self.seeded_members(seeds))

    @torch.no_grad()
    def stack(self, nets: list[nn.Module]) -> None:
        """These members' weights, each grouped parameter the stack of their same-named ones."""
        states = [net.state_dict() for net in nets]
        self.load_state_dict({name: torch.stack([s[name] for s in states]) for name in states[0]})

    def member_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


_LIST_MEMBER = re.compile(r"nets\.(\d+)\.(.+)")


def stack_list_ensemble_state(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """A ``ModuleListEnsemble`` checkpoint (``nets.{m}.name``, saved before the family's ensembles
    were grouped) as this one's ``name`` = the members' tensors stacked, so deployed models load."""
    members: dict[str, dict[int, torch.Tensor]] = {}
    for key in [k for k in state if k.startswith(prefix)]:
        match = _LIST_MEMBER.fullmatch(key[len(prefix) :])
        if match:
            members.setdefault(match[2], {})[int(match[1])] = state.pop(key)
    for name, tensors in members.items():
        state[prefix + name] = torch.stack([tensors[m] for m in sorted(tensors)])
