"""A Transformer whose feed-forward layers are top-k routed experts (Switch Transformer, Fedus et
al. 2021; ST-MoE, Zoph et al. 2022).

Each token's router picks its ``top_k`` experts; their outputs are mixed by the renormalized
router probabilities. Two choices keep train/serve parity exact:

- no expert capacity: a token is never dropped because other tokens in the batch filled its
  expert, so one window's prediction does not depend on which windows share its batch;
- no routing noise: the same token always goes to the same experts.

Every expert is evaluated for every token and the gates are zero outside the top k: with a
handful of experts on the CPU this costs little and keeps the arithmetic independent of the
batch. Training adds the Switch load-balancing loss (``balance_weight``: the share of routed
tokens times the mean router probability, summed over experts and scaled by their number; 1 when
balanced) and the ST-MoE router z-loss (``router_z_weight``), which keeps router logits small.

The head reads only the newest token, so the last layer attends and routes for that token alone
(exact, and half the expert work at two layers); its expert usage counts those tokens.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from models.families.base import ModelFamily
from models.families.builtin import TRANSFORMER_PRESETS, preset_sizes
from models.families.schema import HyperParam, IncompatibleHyperparametersError
from models.networks import ArchitectureSpec


class ExpertRouting(nn.Module):
    """Top-k routing with its usage counts and training loss, over any leading dimensions: one
    network's tokens (``routed``: (n_experts,)) or a grouped ensemble's members' (``routed``:
    (k, n_experts)). What the family's report and the adaptive rule read."""

    def __init__(
        self,
        n_experts: int,
        top_k: int,
        balance_weight: float,
        z_weight: float,
        members: tuple[int, ...] = (),
    ):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise IncompatibleHyperparametersError(
                f"moe_transformer: top_k {top_k} must be within 1..n_experts ({n_experts})"
            )
        self.top_k = top_k
        self.balance_weight = balance_weight  # adjustable during training (adaptive rules)
        self.z_weight = z_weight
        # tokens routed to each expert since the last reset: not saved, not a weight
        self.routed: torch.Tensor
        counts = torch.zeros(*members, n_experts, dtype=torch.float64)
        self.register_buffer("routed", counts, persistent=False)
        self.auxiliary_loss: torch.Tensor | None = None

    def route(self, logits: torch.Tensor) -> torch.Tensor:
        """The gates (..., N, E) of router ``logits`` (..., N, E): the top k's renormalized
        probabilities, zero elsewhere. Counts the routing; in training, sets ``auxiliary_loss``
        (summed over members, as the list ensemble's members' losses are)."""
        probs = logits.softmax(-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, top_i, top_p / top_p.sum(-1, keepdim=True))
        dispatched = torch.zeros_like(probs).scatter(-1, top_i, 1.0)
        with torch.no_grad():
            self.routed += dispatched.sum(-2).to(self.routed.dtype)
        if self.training:
            n_experts = probs.shape[-1]
            share = dispatched.mean(-2) / self.top_k  # f_e: the share of routed slots
            balance = n_experts * (share * probs.mean(-2)).sum(-1)
            z_loss = torch.logsumexp(logits, -1).pow(2).mean(-1)
            self.auxiliary_loss = (self.balance_weight * balance + self.z_weight * z_loss).sum()
        else:
            self.auxiliary_loss = None
        return gates

    def member_counts(self) -> torch.Tensor:
        """(members, n_experts): each member's routed tokens (one row for a single network)."""
        return self.routed.reshape(-1, self.routed.shape[-1])

    def usage(self) -> list[float]:
        """Each expert's share of the routed tokens since the last ``reset_usage`` (members
        summed)."""
        counts = self.member_counts().sum(0)
        total = float(counts.sum())
        return [round(float(c) / total, 4) if total else 0.0 for c in counts]

    def reset_usage(self) -> None:
        self.routed.zero_()


class ExpertFeedForward(ExpertRouting):
    """``n_experts`` two-layer GELU MLPs behind a linear top-k router."""

    def __init__(
        self, d_model: int, n_experts: int, top_k: int, width: int, balance_weight: float, z_weight: float
    ):
        super().__init__(n_experts, top_k, balance_weight, z_weight)
        self.router = nn.Linear(d_model, n_experts, bias=False)
        bound_in, bound_out = 1 / math.sqrt(d_model), 1 / math.sqrt(width)
        self.w_in = nn.Parameter(torch.empty(n_experts, d_model, width).uniform_(-bound_in, bound_in))
        self.b_in = nn.Parameter(torch.empty(n_experts, 1, width).uniform_(-bound_in, bound_in))
        self.w_out = nn.Parameter(torch.empty(n_experts, width, d_model).uniform_(-bound_out, bound_out))
        self.b_out = nn.Parameter(torch.empty(n_experts, 1, d_model).uniform_(-bound_out, bound_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        shape = h.shape
        tokens = h.reshape(-1, shape[-1])  # (N, D)
        gates = self.route(self.router(tokens))
        hidden = nn.functional.gelu(
            torch.baddbmm(self.b_in, tokens.expand(len(self.w_in), -1, -1), self.w_in)
        )
        experts = torch.baddbmm(self.b_out, hidden, self.w_out)  # (E, N, D)
        return torch.einsum("ne,end->nd", gates, experts).reshape(shape)


class MoEEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (post-norm) with the dense feed-forward replaced by experts."""

    def __init__(self, d_model: int, nhead: int, dropout: float, experts: ExpertFeedForward):
        super().__init__()
        self.attention = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.experts = experts
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """(batch, L, d_model); with ``newest_only``, the newest token's output, (batch, 1, d_model)."""
        query = h[:, -1:] if newest_only else h
        attended, _ = self.attention(query, h, h, need_weights=False)
        h = self.norm1(query + self.dropout(attended))
        return self.norm2(h + self.dropout(self.experts(h)))


class MoETransformerRegressor(nn.Module):
    def __init__(self, spec: ArchitectureSpec, options: dict[str, Any]):
        super().__init__()
        d_model = spec.hidden_size
        nhead = options["nhead"] or (2 if d_model % 2 == 0 else 1)
        if d_model % nhead:
            raise IncompatibleHyperparametersError(
                f"moe_transformer: d_model {d_model} is not a multiple of nhead {nhead}"
            )
        width = max(round((options["d_ff_ratio"] or 2.0) * d_model), 1)
        self.embed = nn.Linear(spec.n_features, d_model)
        self.position = nn.Parameter(torch.zeros(1, spec.seq_len, d_model))
        self.layers = nn.ModuleList(
            MoEEncoderLayer(
                d_model,
                nhead,
                spec.dropout,
                ExpertFeedForward(
                    d_model,
                    options["n_experts"],
                    options["top_k"],
                    width,
                    options["balance_weight"],
                    options["router_z_weight"],
                ),
            )
            for _ in range(spec.num_layers)
        )
        self.head = nn.Linear(d_model, spec.n_outputs)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        groups = [list(layer.parameters()) for layer in self.layers]
        groups[0] = [*self.embed.parameters(), self.position, *groups[0]]
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.position[:, : x.shape[1]]
        for depth, layer in enumerate(self.layers, start=1):
            h = layer(h, newest_only=depth == len(self.layers))
        out = self.head(h[:, -1, :])
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class MoETransformerFamily(ModelFamily):
    name = "moe_transformer"
    schema = (
        HyperParam("nhead", int, None, 1, 32, doc="attention heads; unset: 2 (1 for an odd width)"),
        HyperParam("d_ff_ratio", float, None, 0.5, 8.0, doc="each expert's width / d_model; unset: 2"),
        HyperParam("preset", str, None, choices=tuple(TRANSFORMER_PRESETS), doc="sets the four sizes"),
        HyperParam("n_experts", int, 4, 2, 64, doc="experts per feed-forward layer"),
        HyperParam("top_k", int, 1, 1, 8, doc="experts each token is routed to (Switch: 1)"),
        HyperParam("balance_weight", float, 0.01, 0.0, 1.0, doc="load-balancing loss weight (Switch: 0.01)"),
        HyperParam("router_z_weight", float, 0.001, 0.0, 1.0, doc="router z-loss weight (ST-MoE: 0.001)"),
    )
    aliases: ClassVar[dict[str, str]] = {"d_model": "hidden_size", "n_layers": "num_layers"}
    shape_params = ("hidden_size", "num_layers", "seq_len", "d_ff_ratio", "n_experts")

    def configure(self, common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return preset_sizes(common, options)

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return MoETransformerRegressor(spec, self.options(spec))

    def build_ensemble(self, spec: ArchitectureSpec, seeds: list[int] | None) -> nn.Module:
        """k seeds as one grouped network: a batched op per layer, not k small ones."""
        from models.families.grouped_transformer import GroupedMoETransformerEnsemble

        return GroupedMoETransformerEnsemble(spec, seeds)

    def report(self, network: nn.Module) -> dict[str, Any]:
        """Expert usage per MoE layer (summed over a grouped ensemble's members; a list
        ensemble's members' layers each): a collapsed router shows as one expert taking nearly
        every token."""
        layers = [m for m in network.modules() if isinstance(m, ExpertRouting)]
        return {"expert_usage": [layer.usage() for layer in layers]}
