"""Train a torch MLP on digits: the first real job, with per-epoch metrics, checkpoints and resume.

The loop (:func:`backends.classifier.training.train_epochs`) is shared by the job and by
``benchmarks/bench_engine.py``, which times it bare against the same loop run through the engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from backends.classifier import training
from backends.classifier.data import display_image, load_dataset, stratified_split
from backends.classifier.jobconfigs import TrainMLPConfig
from backends.classifier.models import MLP, save_mlp
from backends.classifier.training import accuracy
from backends.common.devices import resolve_device
from backends.common.safe_load import load_state_dict
from backends.common.seeding import seed_everything

if TYPE_CHECKING:
    from workbench.jobs import JobContext

CHECKPOINT_NAME = "last.safetensors"


def make_optimizer(model: nn.Module, cfg: TrainMLPConfig) -> torch.optim.Optimizer:
    return training.make_optimizer(
        model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum
    )


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    start_epoch: int,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """:func:`training.train_epochs` on the train split, with train/test accuracy after each epoch
    passed to ``on_epoch(done_epochs, metrics)`` (computed only when someone listens)."""
    x_train, y_train, x_test, y_test = data

    def report(done: int, mean_loss: float) -> None:
        if on_epoch is not None:
            on_epoch(
                done,
                {
                    "train_loss": mean_loss,
                    "train_acc": accuracy(model, x_train, y_train),
                    "test_acc": accuracy(model, x_test, y_test),
                },
            )

    training.train_epochs(
        model,
        optimizer,
        x_train,
        y_train,
        start_epoch=start_epoch,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        on_epoch=report,
        check=check,
    )


# -- checkpoints (safetensors only: model, optimiser tensors; the rest as JSON metadata) -----


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {
        "epoch": str(epoch),
        "param_groups": json.dumps(opt["param_groups"]),
        "scalars": json.dumps(scalars),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_state_dict(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in json.loads(meta["scalars"]).items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["epoch"])


# -- the job ------------------------------------------------------------------------------


def prepare(cfg: TrainMLPConfig, dataset: str, seed: int, device: torch.device):
    """Data tensors, split and a freshly initialised model/optimiser for ``seed``."""
    data = load_dataset(dataset)
    split = stratified_split(data.y, cfg.test_fraction, cfg.split_seed)
    x = torch.from_numpy(data.x).to(device)
    y = torch.from_numpy(data.y).to(device)
    tensors = (x[split.train], y[split.train], x[split.test], y[split.test])
    seed_everything(seed)
    model = MLP(data.input_dim, cfg.hidden, data.num_classes).to(device)
    return data, split, tensors, model, make_optimizer(model, cfg)


def run(ctx: JobContext) -> dict[str, float]:
    """Job ``classifier.train_mlp`` (see :class:`TrainMLPConfig`)."""
    from workbench.artifacts import Curves, Graph, Heatmap, ImageGrid, Table, Text

    cfg: TrainMLPConfig = ctx.config
    if not cfg.hidden:
        raise ValueError("hidden: give at least one hidden layer width")
    device = resolve_device(cfg.device)
    ctx.set_device(str(device))
    dataset_name = ctx.dataset.name if ctx.dataset else "digits"
    data, split, tensors, model, optimizer = prepare(cfg, dataset_name, ctx.seed, device)
    ctx.log(
        f"{dataset_name}: {len(split.train)} train / {len(split.test)} test examples, "
        f"MLP {data.input_dim}-{'-'.join(map(str, cfg.hidden))}-{data.num_classes} on {device}"
    )
    start = 0
    if ctx.resume is not None:
        start = load_checkpoint(ctx.resume.path, model, optimizer)
    ckpt_path = ctx.checkpoint_dir / CHECKPOINT_NAME

    def on_epoch(done: int, metrics: dict[str, float]) -> None:
        ctx.metrics(metrics, step=done)
        ctx.progress(done, cfg.epochs, f"epoch {done}/{cfg.epochs}")
        if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
            save_checkpoint(ckpt_path, model, optimizer, done)
            ctx.record_checkpoint(ckpt_path, done)

    train_epochs(
        model,
        optimizer,
        tensors,
        start_epoch=start,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=ctx.seed,
        on_epoch=on_epoch,
        check=ctx.check,
    )

    # -- results ---------------------------------------------------------------------------
    x_train, y_train, x_test, y_test = tensors
    model.eval()
    with torch.no_grad():
        pred = model(x_test).argmax(1).cpu().numpy()
    truth = y_test.cpu().numpy()
    k = data.num_classes
    confusion = np.zeros((k, k))
    np.add.at(confusion, (truth, pred), 1)
    per_class = confusion.diagonal() / confusion.sum(1).clip(min=1)
    train_acc, test_acc = accuracy(model, x_train, y_train), accuracy(model, x_test, y_test)

    def write(folder: Path) -> None:
        save_mlp(
            model,
            folder,
            {
                "dataset": dataset_name,
                "image_shape": list(data.image_shape),
                "class_names": data.class_names,
                "split_seed": cfg.split_seed,
                "test_fraction": cfg.test_fraction,
                "train_seed": ctx.seed,
                "source_run": ctx.run_id,
            },
        )
        (folder / "split.json").write_text(json.dumps(split.to_json()))

    name = cfg.model_name or f"digits-mlp-run{ctx.run_id}"
    folder = ctx.save_model(
        name, write, kind="classifier.mlp", meta={"test_acc": test_acc, "train_acc": train_acc}
    )
    name = folder.name

    series = ctx.project.metric_series(ctx.run_id)
    ctx.artifact(
        "training curves",
        Curves(
            {k_: series[k_] for k_ in ("train_acc", "test_acc") if k_ in series},
            x_label="epoch",
            y_label="accuracy",
            title="Accuracy per epoch",
        ),
    )
    ctx.artifact(
        "per-class accuracy",
        Table(
            ["class", "test examples", "accuracy"],
            [
                [data.class_names[c], int(confusion[c].sum()), round(float(per_class[c]), 4)]
                for c in range(k)
            ],
            title="Per-class test accuracy",
        ),
    )
    ctx.artifact(
        "confusion matrix",
        Heatmap(
            confusion,
            x_labels=data.class_names,
            y_labels=data.class_names,
            title="Test confusion (rows: true, columns: predicted)",
            x_title="predicted",
            y_title="true",
        ),
    )
    wrong = np.flatnonzero(pred != truth)[:16]
    if len(wrong):
        images = [display_image(data.x[split.test[i]]) for i in wrong]
        ctx.artifact(
            "misclassified",
            ImageGrid(
                images,
                captions=[f"true {truth[i]} / pred {pred[i]}" for i in wrong],
                cols=min(8, len(wrong)),
                title="Misclassified test digits",
            ),
        )
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(
        (c, {"accuracy": float(per_class[i])}) for i, c in enumerate(data.class_names)
    )
    for i in range(k):
        for j in range(i + 1, k):
            w = confusion[i, j] + confusion[j, i]
            if w:
                graph.add_edge(data.class_names[i], data.class_names[j], weight=float(w))
    ctx.artifact(
        "confusion graph",
        Graph.from_networkx(
            graph,
            layout=nx.circular_layout(graph),
            title="Classes linked by test confusions",
            node_size="accuracy",
        ),
    )
    ctx.artifact(
        "summary",
        Text(
            f"Trained {name}: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} "
            f"(gap {train_acc - test_acc:.4f}) after {cfg.epochs} epochs.\nSaved to {folder}."
        ),
    )
    return {"train_test_gap": train_acc - test_acc}
