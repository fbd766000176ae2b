"""Seed ensembles: k copies of one architecture, each from its own seed, that trade as their mean.

A trial's score should measure the configuration, not the luck of one initialization; the mean
of k members trained from k seeds is what is scored, deployed and traded. Members are trained
together as one batched computation: every weight carries a leading member dimension, so one
``bmm`` does the work of k small matrix products and k seeds cost far less than k trainings.

``member_outputs`` gives each member's prediction (per-seed scores, the ranking's reliability);
``forward`` gives their mean, the ensemble's prediction, so a ``SeedEnsemble`` is used wherever
a single network is (inference, checkpoints, the live predictor, fine-tuning).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from models.networks import ArchitectureSpec

log = logging.getLogger(__name__)
# vmap runs attention's fused kernels member by member (no batching rule yet): still exact, and
# ``live_forward`` times the result against the loop, so the warning says nothing to a user
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")


def member_seeds(seed: int, members: int) -> list[int]:
    """The seeds of an ensemble's members: the same for every trial (common random numbers)."""
    return [seed + m for m in range(members)]


class SeedEnsemble(nn.Module):
    """Interface of a k-member ensemble: per-member outputs, their mean, per-member init."""

    members: int

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """(members, batch[, horizons]); ``x`` is (batch, T, F) shared, or (members, batch, T, F)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_outputs(x).mean(0)

    def member_parameters(self) -> list[nn.Parameter]:
        """Parameters whose first dimension is the member (per-member gradient clipping)."""
        raise NotImplementedError


# Each LSTM member's slice of the grouped weights can also run through PyTorch's own LSTM kernel,
# one call per member: the same computation, faster where the grouped recurrence's per-step ops
# (and their backward) cost more than the calls they save. Measured, one thread, 8 members, 20
# steps: a training step at batch 64 from width 16 up (width 8: 3.8 ms op by op vs 6.3 through
# the kernel; 16: 5.9 vs 4.1; 32: 9.6 vs 5.4, bench seed_ensemble_cost_ratio
# details.fused_floor); a float64 prediction from a few hundred windows up (width 32: 756
# windows 302 ms vs 144; one live window 0.37 ms vs 1.26, so live inference stays grouped).
FUSED_FROM_HIDDEN = 16  # training steps
FUSED_FROM_BATCH = 256  # predictions


class GroupedLSTMEnsemble(SeedEnsemble):
    """k LSTM regressors (``nn.LSTM`` semantics, with the gates laid out i, f, o, g and one bias
    per gate, the sum of PyTorch's two), their weights stacked over a leading member dimension.

    Members run as batched matrix products over all members, step by step, or each member's
    slice of the weights through ``torch.lstm``, the same computation, where that is faster:
    training steps from ``FUSED_FROM_HIDDEN`` up (``trains_fused``), predictions of
    ``FUSED_FROM_BATCH`` windows or more."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__()
        k, hidden = spec.members, spec.hidden_size
        self.members = k
        self.hidden = hidden
        self.trains_fused = hidden >= FUSED_FROM_HIDDEN
        self.dropout = spec.dropout if spec.num_layers > 1 else 0.0
        sizes = [spec.n_features] + [hidden] * (spec.num_layers - 1)
        self.w_ih = nn.ParameterList([nn.Parameter(torch.empty(k, n, 4 * hidden)) for n in sizes])
        self.w_hh = nn.ParameterList([nn.Parameter(torch.empty(k, hidden, 4 * hidden)) for _ in sizes])
        self.bias = nn.ParameterList([nn.Parameter(torch.empty(k, 1, 4 * hidden)) for _ in sizes])
        self.head_w = nn.Parameter(torch.empty(k, hidden, spec.n_outputs))
        self.head_b = nn.Parameter(torch.empty(k, 1, spec.n_outputs))
        self.reset_members(seeds or member_seeds(0, k))

    @torch.no_grad()
    def reset_members(self, seeds: list[int]) -> None:
        """Each member initialized as ``nn.LSTM``/``nn.Linear`` would be, from its own seed."""
        bound = 1.0 / math.sqrt(self.hidden)
        for m, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(seed)
            for param in (*self.w_ih, *self.w_hh, self.head_w):
                param[m].uniform_(-bound, bound, generator=gen)
            for b in self.bias:  # b_ih + b_hh, each U(-bound, bound)
                b[m].uniform_(-bound, bound, generator=gen).add_(
                    torch.empty_like(b[m]).uniform_(-bound, bound, generator=gen)
                )
            self.head_b[m].uniform_(-bound, bound, generator=gen)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        """The recurrent layers' parameters, input side first, all members together."""
        return [[self.w_ih[i], self.w_hh[i], self.bias[i]] for i in range(len(self.w_ih))]

    def member_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        members_x = x.unsqueeze(0).expand(self.members, *x.shape) if x.dim() == 3 else x  # (k, B, T, F)
        training_step = self.training and torch.is_grad_enabled()
        fused = self.trains_fused if training_step else members_x.shape[1] >= FUSED_FROM_BATCH
        last_hidden = self._last_hidden_fused if fused else self._last_hidden_grouped
        last = last_hidden(members_x)
        out = torch.baddbmm(self.head_b, last, self.head_w)  # (k, B, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def _last_hidden_grouped(self, h_seq: torch.Tensor) -> torch.Tensor:
        """(k, B, T, F) -> each member's last hidden state (k, B, H), all members per op."""
        k, batch = h_seq.shape[:2]
        for layer, (w_ih, w_hh, bias) in enumerate(zip(self.w_ih, self.w_hh, self.bias, strict=True)):
            if layer > 0 and self.dropout and self.training:
                h_seq = nn.functional.dropout(h_seq, self.dropout, training=True)
            # the input projection of every step at once; only the recurrence is sequential
            steps = h_seq.shape[2]
            gates_in = torch.baddbmm(bias, h_seq.reshape(k, batch * steps, -1), w_ih)
            # time first and contiguous, then unbind: each step's slice is a plain block (a
            # strided slice would be copied, and its backward would fill a whole gradient)
            gates_in = gates_in.view(k, batch, steps, -1).permute(2, 0, 1, 3).contiguous()
            h = h_seq.new_zeros(k, batch, self.hidden)
            c = h_seq.new_zeros(k, batch, self.hidden)
            outputs = []
            split = 3 * self.hidden
            for step_in in gates_in.unbind(0):  # T x (k, B, 4H)
                gates = torch.baddbmm(step_in, h, w_hh)
                # gates laid out (i, f, o, g): one sigmoid and one tanh per step, not five
                i, f, o = torch.sigmoid(gates[..., :split]).chunk(3, dim=-1)
                c = torch.addcmul(f * c, i, torch.tanh(gates[..., split:]))
                h = o * torch.tanh(c)
                outputs.append(h)
            h_seq = torch.stack(outputs, dim=2)
        return h

    def _last_hidden_fused(self, members_x: torch.Tensor) -> torch.Tensor:
        """(k, B, T, F) -> each member's last hidden state (k, B, H), member by member through
        ``torch.lstm`` (``nn.LSTM``'s kernel: its gate order and weight layout, one bias)."""
        hidden = self.hidden
        i_f, o, g = (
            torch.arange(2 * hidden),
            torch.arange(2 * hidden, 3 * hidden),
            torch.arange(3 * hidden, 4 * hidden),
        )
        to_torch = torch.cat([i_f, g, o])  # (i, f, o, g) -> (i, f, g, o)
        no_bias = members_x.new_zeros(4 * hidden)
        per_layer = [
            (w_ih[..., to_torch].transpose(1, 2), w_hh[..., to_torch].transpose(1, 2), bias[:, 0, to_torch])
            for w_ih, w_hh, bias in zip(self.w_ih, self.w_hh, self.bias, strict=True)
        ]
        start = members_x.new_zeros(len(per_layer), members_x.shape[1], hidden)
        last = []
        for m in range(self.members):
            weights = [t for w_ih, w_hh, bias in per_layer for t in (w_ih[m], w_hh[m], bias[m], no_bias)]
            out, _, _ = torch.lstm(  # has_biases, num_layers, dropout, train, bidirectional, batch_first
                members_x[m],
                (start, start),
                weights,
                True,
                len(per_layer),
                self.dropout,
                self.training,
                False,
                True,
            )
            last.append(out[:, -1])
        return torch.stack(last)


class ModuleListEnsemble(SeedEnsemble):
    """Any family's k members side by side (a loop over members): the general fallback for
    families without a grouped implementation."""

    def __init__(self, spec: ArchitectureSpec, seeds: list[int] | None = None):
        super().__init__()
        from dataclasses import replace

        from models.networks import build_single

        seeds = seeds or member_seeds(0, spec.members)
        self.members = spec.members
        nets = []
        for seed in seeds:
            torch.manual_seed(seed)
            nets.append(build_single(replace(spec, members=1)))
        self.nets = nn.ModuleList(nets)

    def backbone_layers(self) -> list[list[nn.Parameter]]:
        per_member = [net.backbone_layers() for net in self.nets]  # type: ignore[operator]
        return [[p for layers in per_member for p in layers[i]] for i in range(len(per_member[0]))]

    def member_parameters(self) -> list[nn.Parameter]:
        return []  # members are separate modules: clipped one by one

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return torch.stack([net(x) for net in self.nets])
        return torch.stack([net(x[m]) for m, net in enumerate(self.nets)])


def live_forward(network: nn.Module, probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The faster of two exact forward passes of a network that no longer trains, for one window
    at a time (``probe``: a window of the input's shape).

    A list ensemble's members can run as one vmapped call over a snapshot of their stacked
    weights (``torch.func``): one batched op per layer instead of k small ones. Where per-op
    overhead dominates (small members) that halves the time; where arithmetic does (wide members)
    the loop is as fast and steadier, so both are timed on the probe and the faster kept. A family
    whose ops vmap cannot batch, or whose batched output differs, keeps the loop.
    """
    if not isinstance(network, ModuleListEnsemble):
        return network
    from torch.func import functional_call, stack_module_state

    weights, buffers = stack_module_state(list(network.nets))  # type: ignore[arg-type]
    skeleton = copy.deepcopy(network.nets[0]).to("meta")

    def member(w: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, (w, b), (x,))

    batched = torch.vmap(member, in_dims=(0, 0, None))

    def forward(x: torch.Tensor) -> torch.Tensor:
        return batched(weights, buffers, x).mean(0)

    with torch.inference_mode():
        try:
            same = torch.allclose(forward(probe), network(probe), rtol=0, atol=1e-12)
        except Exception as error:  # noqa: BLE001 - any family code vmap cannot run: the loop is exact
            log.info("members run one by one: vmap cannot batch this family (%s)", error)
            return network
        if not same:
            return network
        return forward if _seconds(forward, probe) < _seconds(network, probe) else network


def _seconds(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, calls: int = 9) -> float:
    """Median wall time of ``calls`` forward passes, after one to warm up."""
    forward(x)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - started)
    return sorted(times)[calls // 2]
