"""The one interface every model family implements, built-in or brought by a user.

A family declares its own hyperparameters (beyond the architecture's common width, depth,
dropout and sequence length), builds its network for a spec and seeds, names the parameters
that fix weight shapes (a fine-tune needs them equal) and may add loss terms. Everything the
pipeline needs to know about a family is asked here, never hard-coded by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from models.families.schema import HyperParam, check_values
from models.networks import ArchitectureSpec

# ArchitectureSpec fields every family's spec has; shape_params may name them or its own options
COMMON_ARCHITECTURE = ("hidden_size", "num_layers", "dropout", "seq_len")
ALWAYS_SHAPE = ("family", "n_features", "n_outputs", "members")


class ModelFamily:
    """Subclass, set ``name``/``schema``/``shape_params`` and implement ``build_single``."""

    name: ClassVar[str]
    schema: ClassVar[tuple[HyperParam, ...]] = ()  # the family's own hyperparameters
    # the names users' spaces use for the common fields (e.g. d_model for hidden_size)
    aliases: ClassVar[Mapping[str, str]] = {}
    # common fields and options that fix weight shapes: a deployed model is fine-tuned only when
    # these are equal (ALWAYS_SHAPE are compared for every family)
    shape_params: ClassVar[tuple[str, ...]] = ("hidden_size", "num_layers", "seq_len")
    seed_free: ClassVar[bool] = False  # trained in closed form: more seeds give copies

    def options(self, spec: ArchitectureSpec) -> dict[str, Any]:
        """The family's hyperparameters for ``spec``: its declared defaults, overridden by
        ``spec.options`` (checked, so a typo is refused with the known names)."""
        given = check_values(f"model family {self.name!r}", self.schema, spec.options, COMMON_ARCHITECTURE)
        return {**{p.name: p.default for p in self.schema}, **given}

    def configure(self, common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """The common architecture fields after the family's options (e.g. a size preset sets
        width and depth); applied once, when a spec is made, so a spec says what is built."""
        return common

    def build_single(self, spec: ArchitectureSpec) -> nn.Module:
        raise NotImplementedError

    def build(self, spec: ArchitectureSpec, seeds: list[int] | None = None) -> nn.Module:
        """One network, or a seed ensemble of ``spec.members`` (each member from its seed)."""
        self.options(spec)  # an unknown option is refused here, never silently ignored
        if spec.members == 1:
            return self.build_single(spec)
        if self.seed_free:
            raise ValueError(f"the {self.name} family is seed-free: an ensemble of it is one model")
        return self.build_ensemble(spec, seeds)

    def build_ensemble(self, spec: ArchitectureSpec, seeds: list[int] | None) -> nn.Module:
        """A seed ensemble of ``spec.members``: the members side by side, by default; a family
        with a grouped implementation (one batched op per layer for all members) returns that."""
        from models.ensemble import ModuleListEnsemble

        return ModuleListEnsemble(spec, seeds)

    def backbone_layers(self, network: nn.Module) -> list[list[nn.Parameter]]:
        """Parameter groups, input side first, that fine-tuning may freeze (never the head)."""
        layers = getattr(network, "backbone_layers", None)
        return layers() if callable(layers) else []

    def backbone_names(self, network: nn.Module) -> list[list[str]]:
        """``backbone_layers`` as parameter names, for logs and the report."""
        names = {id(p): n for n, p in network.named_parameters()}
        return [[names[id(p)] for p in layer] for layer in self.backbone_layers(network)]

    def shape_differences(self, a: ArchitectureSpec, b: ArchitectureSpec) -> list[str]:
        """Names that fix weight shapes and differ between ``a`` and ``b``; empty: reusable."""
        if a.family != b.family:
            return ["family"]
        out = [k for k in ALWAYS_SHAPE if getattr(a, k) != getattr(b, k)]
        ea, eb = self.effective(a), self.effective(b)
        return out + [k for k in self.shape_params if ea.get(k) != eb.get(k)]

    def effective(self, spec: ArchitectureSpec) -> dict[str, Any]:
        """Every architecture value the network is built from: common fields and options."""
        return {**{k: getattr(spec, k) for k in COMMON_ARCHITECTURE}, **self.options(spec)}

    def extra_loss(self, network: nn.Module) -> torch.Tensor | None:
        """Loss terms beyond the prediction error (e.g. MoE load balancing), from the last
        forward pass: the sum of every submodule's ``auxiliary_loss`` tensor, taken (each is
        cleared, so no graph outlives its step and the network stays copyable)."""
        terms: list[torch.Tensor] = []
        for module in network.modules():
            term = getattr(module, "auxiliary_loss", None)
            if isinstance(term, torch.Tensor):
                terms.append(term)
                setattr(module, "auxiliary_loss", None)  # noqa: B010 (a Module attribute)
        return torch.stack(terms).sum() if terms else None

    def report(self, network: nn.Module) -> dict[str, Any]:
        """What the report shows about a trained network beyond its losses (e.g. expert usage)."""
        return {}
