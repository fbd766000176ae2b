"""Training and incremental fine-tuning of the sequence models, with early stopping.

Seeded and single-threaded on CPU so a trial is reproducible; CUDA is used when present.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from models.adaptive_training import TrainingControl, TrainingRule
from models.ensemble import SeedEnsemble, member_seeds
from models.families import architecture_spec, get_family
from models.networks import ArchitectureSpec, LinearRegressor, build_network
from models.training_options import TrainingOptions
from pipelines.config import HyperParams
from pipelines.training.ridge import fit_ridge

log = logging.getLogger(__name__)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    # One thread: small sequence models train ~10x faster on 2 cores without oversubscription,
    # and results are reproducible.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def architecture(
    params: HyperParams, n_features: int, n_outputs: int = 1, members: int = 1
) -> ArchitectureSpec:
    """The network ``params`` describe; ``members`` > 1: a seed ensemble (one model for a
    seed-free family, where more seeds would give copies). The family picks its own
    hyperparameters out of ``params`` (models.families)."""
    return architecture_spec(params.model_family, params.model_dump(), n_features, n_outputs, members)


@dataclass
class TrainResult:
    network: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    adaptations: list[dict] = field(default_factory=list)  # adaptive rules' firings, with evidence

    @property
    def best_val_loss(self) -> float | None:
        losses = [h["val_loss"] for h in self.history if h.get("val_loss") is not None]
        return min(losses) if losses else None


def fit(
    network: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    patience: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    frozen_layers: int = 0,
    horizon_weights: tuple[float, ...] | None = None,
    options: TrainingOptions | None = None,
    family: str | None = None,
    rules: Sequence[TrainingRule] = (),
) -> TrainResult:
    """Minimize MSE (plus the family's extra loss terms) with the ``options``' optimizer and
    schedule (default: Adam at a constant rate); with a validation set, keep the best epoch and
    stop early.

    ``frozen_layers``: the first N backbone layers keep their weights (fine-tuning adapts the
    upper layers and the head only); they are trainable again when this returns. ``rules``:
    adaptive training rules, asked after every epoch (models.adaptive_training).
    """
    options = options or TrainingOptions()
    extra_loss = get_family(family or "lstm").extra_loss  # the default: modules' auxiliary_loss
    if isinstance(network, LinearRegressor):
        return fit_linear(network, x, y, x_val, y_val, horizon_weights)
    with frozen(network, frozen_layers):
        seed_everything(seed)
        dev = device()
        network.to(dev)
        optimizer = options.make_optimizer([p for p in network.parameters() if p.requires_grad], lr)
        schedule = options.make_schedule(optimizer, epochs)
        weights = None if horizon_weights is None else torch.tensor(horizon_weights, device=dev)
        # training's loss weights (adaptive rules may shift them); validation keeps the config's
        control = TrainingControl(network, optimizer, schedule, loss_weights=weights)
        xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
        yt = torch.as_tensor(y, dtype=torch.float32, device=dev)
        has_val = x_val is not None and y_val is not None and len(x_val) > 0
        result = TrainResult(network=network)
        best_state, best_loss, bad_epochs = None, float("inf"), 0
        members = network.members if isinstance(network, SeedEnsemble) else 1
        # each member shuffles with its own seed, as k separate trainings would
        generators = [torch.Generator().manual_seed(s) for s in member_seeds(seed, members)]
        for epoch in range(1, epochs + 1):
            schedule.start_epoch(epoch)
            epoch_lr = schedule.lr
            network.train()
            order = torch.stack([torch.randperm(len(xt), generator=g) for g in generators]).to(dev)
            total = 0.0
            for start in range(0, len(xt), batch_size):
                idx = order[:, start : start + batch_size]
                optimizer.zero_grad()
                if isinstance(network, SeedEnsemble):
                    # the members' losses summed: their weights are disjoint, so each member
                    # gets exactly the gradient of its own training
                    outputs = network.member_outputs(xt[idx])
                    loss = sum(
                        weighted_mse(outputs[m], yt[idx[m]], control.loss_weights) for m in range(members)
                    )
                else:
                    loss = weighted_mse(network(xt[idx[0]]), yt[idx[0]], control.loss_weights)
                extra = extra_loss(network)  # trained on, but not part of the reported loss
                (loss if extra is None else loss + extra).backward()  # type: ignore[union-attr]
                if options.grad_clip > 0:
                    clip_gradients(network, options.grad_clip)
                optimizer.step()
                total += float(loss.detach()) / members * idx.shape[1]  # type: ignore[union-attr]
            row: dict[str, float | None] = {
                "epoch": epoch,
                "train_loss": total / max(len(xt), 1),
                "val_loss": None,
                "lr": epoch_lr,
            }
            if has_val:
                val_loss = evaluate_loss(network, x_val, y_val, horizon_weights)  # type: ignore[arg-type]
                row["val_loss"] = val_loss
                if val_loss < best_loss - 1e-9:
                    best_loss, bad_epochs, result.best_epoch = val_loss, 0, epoch
                    best_state = copy.deepcopy(network.state_dict())
                else:
                    bad_epochs += 1
            monitored = row["val_loss"] if row["val_loss"] is not None else row["train_loss"]
            schedule.end_epoch(float(monitored or 0.0))
            result.history.append(row)
            if on_epoch:
                on_epoch(row)
            if _adapt(rules, control, result):
                result.stopped_early = True
                break
            if has_val and patience is not None and bad_epochs >= patience:
                result.stopped_early = True
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.to("cpu")
        return result


def _adapt(rules: Sequence[TrainingRule], control: TrainingControl, result: TrainResult) -> bool:
    """Ask each rule after an epoch; log and record what fired. True: a rule stopped training."""
    control.history = result.history
    for rule in rules:
        fired = rule.act(control)
        if fired is None:
            continue
        log.info("adaptive, epoch %d: %s: %s %s", fired.epoch, fired.rule, fired.action, fired.evidence)
        control.adaptations.append(fired)
        result.adaptations.append(fired.to_dict())
        row = result.history[-1]
        row["adaptation"] = "; ".join(filter(None, [row.get("adaptation"), f"{fired.rule}: {fired.action}"]))
    return control.stop


def fit_linear(
    network: LinearRegressor,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    horizon_weights: tuple[float, ...] | None = None,
) -> TrainResult:
    """The linear baseline's training: ridge in closed form on the newest bar of each window
    (learning rate, epochs and seed do not apply; fine-tuning refits on what it is given)."""
    ridge = fit_ridge(x[:, -1, :], y)
    with torch.no_grad():
        network.head.weight.copy_(torch.as_tensor(ridge.coef.T, dtype=network.head.weight.dtype))
        network.head.bias.copy_(torch.as_tensor(ridge.intercept, dtype=network.head.bias.dtype))
    row: dict[str, float | None] = {
        "epoch": 1,
        "train_loss": evaluate_loss(network, x, y, horizon_weights),
        "val_loss": None,
        "lr": None,
        "ridge_penalty": ridge.penalty,
    }
    if x_val is not None and y_val is not None and len(x_val) > 0:
        row["val_loss"] = evaluate_loss(network, x_val, y_val, horizon_weights)
    return TrainResult(network=network, history=[row], best_epoch=1)


def clip_gradients(network: nn.Module, max_norm: float) -> None:
    """Clip each member's gradient norm on its own, as separate trainings would."""
    if not isinstance(network, SeedEnsemble):
        nn.utils.clip_grad_norm_(network.parameters(), max_norm)
        return
    grouped = [p for p in network.member_parameters() if p.grad is not None]
    if not grouped:  # members are separate modules
        for member in network.children():
            for net in member.children() if isinstance(member, nn.ModuleList) else [member]:
                nn.utils.clip_grad_norm_(net.parameters(), max_norm)
        return
    norms = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in grouped]).sum(0).sqrt()  # type: ignore[union-attr]
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in grouped:
        p.grad.mul_(scale.view(-1, *[1] * (p.grad.dim() - 1)))  # type: ignore[union-attr]


@contextmanager
def frozen(network: nn.Module, n_layers: int) -> Iterator[None]:
    """The first ``n_layers`` backbone layers untrainable inside the block, trainable after."""
    layers = getattr(network, "backbone_layers", None)
    params = [p for layer in (layers() if callable(layers) else [])[:n_layers] for p in layer]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


def train_new(
    params: HyperParams, x: np.ndarray, y: np.ndarray, seed: int, members: int = 1, **kwargs
) -> TrainResult:
    """A fresh network of ``params``' architecture, trained on (x, y); one output per column
    of a two-dimensional ``y`` (horizons). ``members`` > 1: a seed ensemble whose members start
    from seeds ``seed``, ``seed + 1``, ... (the same for every trial: common random numbers)."""
    seed_everything(seed)
    spec = architecture(params, x.shape[-1], y.shape[1] if y.ndim == 2 else 1, members)
    network = build_network(spec, member_seeds(seed, spec.members))
    return fit(
        network,
        x,
        y,
        lr=params.lr,
        epochs=params.epochs,
        batch_size=params.batch_size,
        seed=seed,
        options=TrainingOptions.from_values(params.model_dump()),
        family=params.model_family,
        **kwargs,
    )


def inference_network(network: nn.Module) -> nn.Module:
    """A float64 copy in eval mode, for predictions.

    In float32 the same window gives outputs ~1e-7 apart depending on how many windows share
    the batch; in float64 they agree to ~1e-16, so the live path (one window) can be held to
    the training path (thousands) at 1e-9 — the train/serve parity gate.
    """
    if next(network.parameters()).dtype == torch.float64 and not network.training:
        return network
    return copy.deepcopy(network).double().eval()


@torch.inference_mode()
def predict(network: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    network = inference_network(network)
    dev = next(network.parameters()).device
    out = [
        network(torch.as_tensor(x[i : i + batch_size], dtype=torch.float64, device=dev)).cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.empty(0)


@torch.inference_mode()
def member_next_bar(network: nn.Module, x: np.ndarray) -> np.ndarray:
    """Each member's next-bar predictions, (members, windows); one row for a single network."""
    if not isinstance(network, SeedEnsemble):
        return next_bar(predict(network, x))[None]
    network = inference_network(network)
    assert isinstance(network, SeedEnsemble)
    if not len(x):
        return np.empty((network.members, 0))
    out = network.member_outputs(torch.as_tensor(x, dtype=torch.float64)).numpy()
    return out if out.ndim == 2 else out[..., 0]


def next_bar(predictions: np.ndarray) -> np.ndarray:
    """The next-bar predictions (what trades), from a one- or multi-horizon model's output."""
    return predictions if predictions.ndim == 1 else predictions[:, 0]


def weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean squared error; over several horizons, their weighted average."""
    error = (prediction - target) ** 2
    if error.ndim == 1 or weights is None:
        return error.mean()
    return (error * weights).sum(-1).mean() / weights.sum()


def evaluate_loss(
    network: nn.Module, x: np.ndarray, y: np.ndarray, horizon_weights: tuple[float, ...] | None = None
) -> float:
    weights = None if horizon_weights is None else torch.tensor(horizon_weights, dtype=torch.float64)
    return float(weighted_mse(torch.from_numpy(predict(network, x)), torch.from_numpy(y), weights))
