"""The families that predate the registry: their networks are unchanged (models.networks), so
parity tests and every saved checkpoint keep working."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from models.families.base import ModelFamily
from models.families.schema import HyperParam
from models.networks import ArchitectureSpec, LinearRegressor, LSTMRegressor, TransformerRegressor


class LinearFamily(ModelFamily):
    """Ridge on the newest bar's features: the reference every search runs."""

    name = "linear"
    shape_params = ()
    seed_free = True

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return LinearRegressor(spec)


class LSTMFamily(ModelFamily):
    """``nn.LSTM`` layers and a linear head; k seeds train as one grouped computation."""

    name = "lstm"

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return LSTMRegressor(spec)

    def build_ensemble(self, spec: ArchitectureSpec, seeds: list[int] | None) -> nn.Module:
        """k seeds as one grouped network: a batched op per layer, not k small ones."""
        from models.ensemble import GroupedLSTMEnsemble

        return GroupedLSTMEnsemble(spec, seeds)


# name -> (d_model, nhead, num_layers, d_ff_ratio); parameter counts in docs/model_families.md
TRANSFORMER_PRESETS: dict[str, tuple[int, int, int, float]] = {
    "small": (32, 2, 2, 2.0),
    "large": (64, 4, 3, 4.0),
    "huge": (128, 8, 4, 4.0),
}


class TransformerFamily(ModelFamily):
    """A post-norm encoder (``nn.TransformerEncoder``) over the window, head on the last step."""

    name = "transformer"
    schema = (
        HyperParam("nhead", int, None, 1, 32, doc="attention heads; unset: 2 (1 for an odd width)"),
        HyperParam("d_ff_ratio", float, None, 0.5, 8.0, doc="feed-forward width / d_model; unset: 2"),
        HyperParam("preset", str, None, choices=tuple(TRANSFORMER_PRESETS), doc="sets the four sizes"),
    )
    aliases: ClassVar[dict[str, str]] = {"d_model": "hidden_size", "n_layers": "num_layers"}
    shape_params = ("hidden_size", "num_layers", "seq_len", "d_ff_ratio")

    def configure(self, common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return preset_sizes(common, options)

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        return TransformerRegressor(spec)

    def build_ensemble(self, spec: ArchitectureSpec, seeds: list[int] | None) -> nn.Module:
        """k seeds as one grouped network: a batched op per layer, not k small ones."""
        from models.families.grouped_transformer import GroupedTransformerEnsemble

        return GroupedTransformerEnsemble(spec, seeds)


def preset_sizes(common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A size preset's d_model and depth (its nhead and d_ff_ratio go to the options)."""
    preset = options.get("preset")
    if preset is None:
        return common
    d_model, nhead, layers, ratio = TRANSFORMER_PRESETS[preset]
    if options.get("nhead") is None:
        options["nhead"] = nhead
    if options.get("d_ff_ratio") is None:
        options["d_ff_ratio"] = ratio
    return {**common, "hidden_size": d_model, "num_layers": layers}
