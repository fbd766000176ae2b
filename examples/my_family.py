"""Bring your own model: a family outside the repository's packages, named in a config as
``model_family: my_family:GRUFamily`` (this directory on PYTHONPATH, or any installed module).

A family subclasses ``models.families.ModelFamily``: it declares its own hyperparameters
(typed, bounded, with defaults), builds its network for a spec, and names its backbone layers
(``backbone_layers`` on the network) and the parameters that fix weight shapes.
"""

from __future__ import annotations

from torch import nn

from models.families import HyperParam, ModelFamily
from models.networks import ArchitectureSpec


class GRURegressor(nn.Module):
    def __init__(self, spec: ArchitectureSpec, bidirectional: bool):
        super().__init__()
        self.gru = nn.GRU(
            spec.n_features,
            spec.hidden_size,
            num_layers=spec.num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.head = nn.Linear(spec.hidden_size * (2 if bidirectional else 1), spec.n_outputs)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        return [
            [p for name, p in self.gru.named_parameters() if f"_l{i}" in name]
            for i in range(self.gru.num_layers)
        ]

    def forward(self, x):
        out, _ = self.gru(x)
        prediction = self.head(out[:, -1, :])
        return prediction.squeeze(-1) if prediction.shape[-1] == 1 else prediction


class GRUFamily(ModelFamily):
    name = "my_family:GRUFamily"
    schema = (HyperParam("bidirectional", bool, False, doc="read the window both ways"),)
    shape_params = ("hidden_size", "num_layers", "seq_len", "bidirectional")

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return GRURegressor(spec, self.options(spec)["bidirectional"])
