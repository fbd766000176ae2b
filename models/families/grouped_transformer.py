"""Transformer and MoE transformer seed ensembles as one network each: k
``TransformerRegressor``s (or ``MoETransformerRegressor``s) whose every weight carries a leading
member dimension, so each projection is one batched op for all members and attention runs once
with the members folded into the batch. Live inference of one window is mostly per-op overhead,
which the member loop multiplied by k.

Parameters are the stacks of the single networks' same-named ones (``models.grouped``), so these
compute what the list ensemble of the same seeds computes, and its checkpoints load. Both apply
the MoE family's shortcut in the last layer (attention and feed-forward for the newest token
alone): the head reads only that token and everything after attention is per token, so the
output is the same.
"""

from __future__ import annotations

import torch
from torch import nn

from models.families.moe import ExpertFeedForward, ExpertRouting, MoEEncoderLayer, MoETransformerRegressor
from models.grouped import (
    GroupedEnsemble,
    GroupedLayerNorm,
    GroupedLinear,
    GroupedMultiheadAttention,
)
from models.networks import ArchitectureSpec, TransformerRegressor


class GroupedEncoderLayer(nn.Module):
    """k ``nn.TransformerEncoderLayer``s as ``TransformerRegressor`` configures them: post-norm,
    ReLU feed-forward, dropout after attention, inside and after the feed-forward."""

    def __init__(self, k: int, d_model: int, nhead: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = GroupedMultiheadAttention(k, d_model, nhead, dropout)
        self.linear1 = GroupedLinear(k, d_model, d_ff)
        self.linear2 = GroupedLinear(k, d_ff, d_model)
        self.norm1, self.norm2 = GroupedLayerNorm(k, d_model), GroupedLayerNorm(k, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        query = h[..., -1:, :] if newest_only else h
        h = self.norm1(query + self.dropout(self.self_attn(h, newest_only)))
        feed = self.linear2(self.dropout(nn.functional.relu(self.linear1(h))))
        return self.norm2(h + self.dropout(feed))


class GroupedEncoder(nn.Module):
    """Holds the layers under ``nn.TransformerEncoder``'s names (``encoder.layers.{i}``)."""

    def __init__(self, layers: list[GroupedEncoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class GroupedExpertFeedForward(ExpertRouting):
    """k ``ExpertFeedForward``s: router and experts grouped, (k, ..., d_model) in and out."""

    def __init__(self, k: int, d_model: int, single: ExpertFeedForward):
        n_experts, width = single.w_in.shape[0], single.w_in.shape[-1]
        super().__init__(n_experts, single.top_k, single.balance_weight, single.z_weight, (k,))
        self.router = GroupedLinear(k, d_model, n_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(k, n_experts, d_model, width))
        self.b_in = nn.Parameter(torch.empty(k, n_experts, 1, width))
        self.w_out = nn.Parameter(torch.empty(k, n_experts, width, d_model))
        self.b_out = nn.Parameter(torch.empty(k, n_experts, 1, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k, d_model = h.shape[0], h.shape[-1]
        tokens = h.reshape(k, -1, d_model)  # (k, N, D)
        gates = self.route(self.router(tokens))  # (k, N, E)
        n_experts, n_tokens = gates.shape[-1], tokens.shape[1]
        # (k * E, N, D): every member's tokens to each of its experts, one bmm per layer
        spread = tokens.unsqueeze(1).expand(k, n_experts, n_tokens, d_model).reshape(-1, n_tokens, d_model)
        hidden = nn.functional.gelu(torch.baddbmm(self.b_in.flatten(0, 1), spread, self.w_in.flatten(0, 1)))
        experts = torch.baddbmm(self.b_out.flatten(0, 1), hidden, self.w_out.flatten(0, 1))
        out = torch.einsum("kne,kend->knd", gates, experts.view(k, n_experts, n_tokens, d_model))
        return out.reshape(h.shape)


class GroupedMoEEncoderLayer(nn.Module):
    """k ``MoEEncoderLayer``s (post-norm, experts for the feed-forward)."""

    def __init__(self, k: int, d_model: int, nhead: int, dropout: float, experts: GroupedExpertFeedForward):
        super().__init__()
        self.attention = GroupedMultiheadAttention(k, d_model, nhead, dropout)
        self.experts = experts
        self.norm1, self.norm2 = GroupedLayerNorm(k, d_model), GroupedLayerNorm(k, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        query = h[..., -1:, :] if newest_only else h
        h = self.norm1(query + self.dropout(self.attention(h, newest_only)))
        return self.norm2(h + self.dropout(self.experts(h)))


class _GroupedSequenceEnsemble(GroupedEnsemble):
    """What both share: embedding plus learned positions in, the head on the newest token."""

    embed: GroupedLinear
    position: nn.Parameter
    head: GroupedLinear

    def _io(self, spec: ArchitectureSpec) -> None:
        k = self.members
        self.embed = GroupedLinear(k, spec.n_features, spec.hidden_size)
        self.position = nn.Parameter(torch.empty(k, 1, spec.seq_len, spec.hidden_size))

    def _layers(self) -> nn.ModuleList:
        raise NotImplementedError

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """Per layer, all members together, input side first; the embedding and positions
        belong to the first layer (the head is not backbone), as in the single networks."""
        groups = [list(layer.parameters()) for layer in self._layers()]
        groups[0] = [*self.embed.parameters(), self.position, *groups[0]]
        return groups

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # every member reads the same windows
            x = x.expand(self.members, *x.shape)
        h = self.embed(x) + self.position[:, :, : x.shape[-2]]  # (k, batch, T, d_model)
        layers = self._layers()
        for depth, layer in enumerate(layers, start=1):
            h = layer(h, newest_only=depth == len(layers))
        out = self.head(h[..., -1, :])  # (k, batch, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class GroupedTransformerEnsemble(_GroupedSequenceEnsemble):
    """``spec.members`` ``TransformerRegressor``s from their own seeds, computed as one network."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__(spec)
        nets = self.seeded_members(seeds)  # first: they refuse what does not build
        assert isinstance(nets[0], TransformerRegressor)
        single = nets[0].encoder.layers[0]
        assert isinstance(single, nn.TransformerEncoderLayer)
        if single.norm_first or single.activation_relu_or_gelu != 1:
            raise NotImplementedError("grouped: post-norm and ReLU, as TransformerRegressor")
        k, d_model = self.members, spec.hidden_size
        self._io(spec)
        self.encoder = GroupedEncoder(
            [
                GroupedEncoderLayer(
                    k, d_model, single.self_attn.num_heads, single.linear1.out_features, spec.dropout
                )
                for _ in range(spec.num_layers)
            ]
        )
        self.head = GroupedLinear(k, d_model, spec.n_outputs)
        self.stack(nets)

    def _layers(self) -> nn.ModuleList:
        return self.encoder.layers


class GroupedMoETransformerEnsemble(_GroupedSequenceEnsemble):
    """``spec.members`` ``MoETransformerRegressor``s from their own seeds, as one network."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__(spec)
        nets = self.seeded_members(seeds)
        assert isinstance(nets[0], MoETransformerRegressor)
        single = nets[0].layers[0]
        assert isinstance(single, MoEEncoderLayer)
        k, d_model = self.members, spec.hidden_size
        self._io(spec)
        self.layers = nn.ModuleList(
            GroupedMoEEncoderLayer(
                k,
                d_model,
                single.attention.num_heads,
                spec.dropout,
                GroupedExpertFeedForward(k, d_model, single.experts),
            )
            for _ in range(spec.num_layers)
        )
        self.head = GroupedLinear(k, d_model, spec.n_outputs)
        self.stack(nets)

    def _layers(self) -> nn.ModuleList:
        return self.layers
