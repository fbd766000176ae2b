"""Sequence regressors behind one interface: (batch, seq_len, n_features) -> (batch,), or
(batch, horizons) for a multi-horizon model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ArchitectureSpec:
    """What determines a network's weight shapes; two specs equal means weights are reusable."""

    family: str
    n_features: int
    hidden_size: int
    num_layers: int
    dropout: float
    seq_len: int
    n_outputs: int = 1  # predicted horizons
    members: int = 1  # a seed ensemble of this many networks (models.ensemble), trading their mean
    # the family's own hyperparameters (models.families), only those set: a spec without them
    # (every checkpoint written before families had options) builds the family's defaults
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.options:  # checkpoint metadata stays what it was for option-free specs
            del out["options"]
        return out

    def shape_differences(self, other: ArchitectureSpec) -> list[str]:
        """The names that fix weight shapes (the family's declaration) and differ; empty means
        weights are reusable."""
        from models.families import get_family

        return get_family(self.family).shape_differences(self, other)


class LSTMRegressor(nn.Module):
    def __init__(self, spec: ArchitectureSpec):
        super().__init__()
        self.lstm = nn.LSTM(
            spec.n_features,
            spec.hidden_size,
            num_layers=spec.num_layers,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(spec.hidden_size, spec.n_outputs)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """The recurrent layers' parameters, input side first (the head is not backbone)."""
        return [
            [p for name, p in self.lstm.named_parameters() if name.endswith(f"_l{i}")]
            for i in range(self.lstm.num_layers)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return _outputs(self.head(out[:, -1, :]))


class TransformerRegressor(nn.Module):
    """``nhead`` and ``d_ff_ratio`` from ``spec.options``; unset, the original choice (2 heads
    when the width is even, feed-forward twice the width), so old checkpoints load unchanged."""

    def __init__(self, spec: ArchitectureSpec):
        super().__init__()
        heads = spec.options.get("nhead") or (2 if spec.hidden_size % 2 == 0 else 1)
        ff_ratio = spec.options.get("d_ff_ratio") or 2.0
        if spec.hidden_size % heads:
            from models.families.schema import IncompatibleHyperparametersError

            raise IncompatibleHyperparametersError(
                f"transformer: d_model {spec.hidden_size} is not a multiple of nhead {heads}"
            )
        self.embed = nn.Linear(spec.n_features, spec.hidden_size)
        self.position = nn.Parameter(torch.zeros(1, spec.seq_len, spec.hidden_size))
        layer = nn.TransformerEncoderLayer(
            spec.hidden_size,
            heads,
            dim_feedforward=max(round(ff_ratio * spec.hidden_size), 1),
            dropout=spec.dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, spec.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(spec.hidden_size, spec.n_outputs)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """The encoder layers' parameters, input side first; the input embedding belongs to the
        first layer (the head is not backbone)."""
        groups = [list(layer.parameters()) for layer in self.encoder.layers]
        groups[0] = [*self.embed.parameters(), self.position, *groups[0]]
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.position[:, : x.shape[1]]
        return _outputs(self.head(self.encoder(h)[:, -1, :]))


class LinearRegressor(nn.Module):
    """The linear baseline: a ridge regression on the newest bar's features (closed form, see
    ``pipelines.training.ridge``), so every search has a reference that needs no seed, no epochs
    and no luck. Sequence length, width and depth do not apply; it has no backbone to freeze."""

    def __init__(self, spec: ArchitectureSpec):
        super().__init__()
        self.head = nn.Linear(spec.n_features, spec.n_outputs)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _outputs(self.head(x[:, -1, :]))


def _outputs(head: torch.Tensor) -> torch.Tensor:
    """(batch,) for one horizon, (batch, horizons) for several."""
    return head.squeeze(-1) if head.shape[-1] == 1 else head


def build_network(spec: ArchitectureSpec, seeds: list[int] | None = None) -> nn.Module:
    """A fresh network of the family named in ``spec`` (models.families); a seed ensemble when
    ``spec.members > 1`` (``seeds``: one per member, initializing each)."""
    from models.families import get_family

    return get_family(spec.family).build(spec, seeds)


def build_single(spec: ArchitectureSpec) -> nn.Module:
    """One network of the family named in ``spec``."""
    from models.families import get_family

    return get_family(spec.family).build_single(spec)
