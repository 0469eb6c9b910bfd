"""Training one run (a :class:`zoomin.config.run.RunSpec`): a loop you can read top to bottom.

:func:`train` sets up the model, optimiser and random streams, resumes from the run's checkpoint
if there is one, runs the epochs (:func:`train_epoch`), and writes the best model and the history.
With ``training.pretrain_epochs`` a fresh run first pre-trains the model's parts as tile
classifiers from the pixel annotations (:mod:`zoomin.training.pretrain`). Every epoch ends with an
atomic checkpoint (model, optimiser, scheduler, RNG states, history) in the run's checkpoint
folder, which lies outside the rule's outputs; a re-run after a kill resumes
from it and ends with the same weights as an uninterrupted run (on the CPU, bit for bit). The
model kept is the one with the best validation accuracy (the last epoch without a validation set;
a one-epoch run does not validate: there is nothing to choose).

Besides the loss parts and accuracies, each epoch's history row records what the forward passes
instantiated per training image (paper Fig. 4): ``mean_input_mb``, the image values read (views,
tiles' stage-2 views, sub-tiles or patches; float32 MB), and for two-stage models
``mean_unique_tiles``, the distinct tiles drawn.

It also records the training budget, cumulative over the epochs so far: ``steps``, the optimiser
steps, ``images_seen``, the training images passed forward, and ``train_gmacs``, an estimate of the
training compute in GMACs (multiply-accumulates, the paper's unit). The first step of each epoch
is counted by ``FlopCounterMode`` (forward, losses and backward: the matrix products and
convolutions, 2 FLOPs per MAC); its MACs per image times the epoch's images is the epoch's
estimate. The estimate follows the model through training (Zoom-In opens fewer tiles as its
attention sharpens) but not within an epoch, and leaves out element-wise work, the optimiser and
the tile pre-training (``pretrain_epochs``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from zoomin.atomic import atomic_path
from zoomin.config.run import RunSpec, TrainingConfig
from zoomin.config.runs import Stream, stream_seed
from zoomin.data.splits import RunData, Subset, load_run_data
from zoomin.errors import UserError
from zoomin.image_access import CountingImage
from zoomin.models.output import ModelOutput
from zoomin.models.registry import model_type
from zoomin.training import losses
from zoomin.training.checkpoints import read_checkpoint, restore_checkpoint, save_checkpoint, stale_reason
from zoomin.training.device import choose_device
from zoomin.training.inference import accuracy, stream_generator
from zoomin.training.pretrain import pretrain_tile_classifiers

log = logging.getLogger(__name__)

# Below this spread of the logits across the images of every batch of an epoch, the model is
# treated as collapsed. At initialisation the LeNet models' logits already differ by 4e-3 or more
# within a batch of four (colon and traffic stand-ins); a collapsed model's differ by 0.
COLLAPSED_SPREAD = 1e-4


@dataclass(frozen=True)
class RunOutputs:
    """Where a training run writes: its checkpoints (outside the rule's outputs) and its results."""

    checkpoint_dir: Path
    model: Path
    history: Path


@dataclass
class Trainer:
    """The live objects of one run: what an epoch updates and a checkpoint saves."""

    spec: RunSpec
    data: RunData
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    shuffle_rng: torch.Generator
    sample_rng: torch.Generator
    loss_config: losses.LossConfig
    contrastive_start: int | None


def train(spec: RunSpec, views: Path, outputs: RunOutputs) -> dict[str, Any]:
    """Train ``spec`` on the images of ``views``, checkpointing every epoch; write the best model
    and the history. Returns the model's metadata."""
    cfg = spec.training
    trainer = setup(spec, views)
    state = {"epoch": 0, "history": [], "best_accuracy": -1.0, "best_state": None}
    checkpoint = outputs.checkpoint_dir / "last.pt"
    identity = run_identity(spec, trainer.data)
    saved = read_checkpoint(checkpoint) if checkpoint.exists() else None
    outdated = stale_reason(saved, identity, cfg.epochs) if saved is not None else None
    if outdated is not None:  # Snakemake re-runs a job whose params changed: so do we, from scratch
        log.warning("checkpoint %s is from an earlier configuration (%s): starting over", checkpoint, outdated)
        checkpoint.unlink()
        saved = None
    if saved is not None:
        state = restore_checkpoint(
            saved, checkpoint, trainer.model, trainer.optimizer, trainer.scheduler,
            trainer.shuffle_rng, trainer.sample_rng, expected=identity,
        )
        log.info("resumed from checkpoint %s after epoch %d", checkpoint, state["epoch"])
    if state["epoch"] == 0 and cfg.pretrain_epochs:
        pretrain_tile_classifiers(
            trainer.model, trainer.data.train, cfg.pretrain_epochs, cfg.lr, cfg.batch_size,
            stream_generator(spec.seed, Stream.PRETRAINING),
        )

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        row = train_epoch(trainer, epoch, state)
        state["history"].append(row)
        score = row["val_accuracy"] if not math.isnan(row["val_accuracy"]) else float(epoch)
        if score >= state["best_accuracy"]:
            state["best_accuracy"] = score
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
            state["best_epoch"] = epoch
        state["epoch"] = epoch
        log.info(
            "epoch %d: loss %.4f train acc %.3f val acc %.3f (%.1fs)",
            epoch, row["train_loss"], row["train_accuracy"], row["val_accuracy"], row["seconds"],
        )
        save_checkpoint(
            checkpoint, trainer.model, trainer.optimizer, trainer.scheduler,
            trainer.shuffle_rng, trainer.sample_rng, state, identity=identity,
        )
    return write_outputs(trainer, state, outputs)


def setup(spec: RunSpec, views: Path) -> Trainer:
    """Data, model, optimiser, scheduler and the run's random streams (docs/reproducibility.md)."""
    cfg = spec.training
    device = choose_device(spec.settings.device)
    data = load_run_data(views, spec.run, spec.n_folds)
    log.info(
        "run %s: %d train / %d val / %d test images, classes %s, seed %d",
        spec.run, len(data.train), len(data.val), len(data.test), data.classes, spec.seed,
    )
    torch.manual_seed(stream_seed(spec.seed, Stream.INIT))
    model = spec.model.build(len(data.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    reference = data.class_index(spec.reference_class)
    positives = tuple(i for i in range(len(data.classes)) if i != reference) if reference is not None else ()
    for key in ("mask_loss_weight", "pretrain_epochs"):
        if getattr(cfg, key) > 0 and not data.train.cache.has_masks:
            raise UserError(
                f"training.{key} is {getattr(cfg, key)} but the view cache {views} has no masks "
                "(pixel annotations); set it to 0 or construct the dataset with masks"
            )
    contrastive = model_type(spec.model.type).contrastive and bool(positives)
    return Trainer(
        spec=spec,
        data=data,
        device=device,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        shuffle_rng=stream_generator(spec.seed, Stream.ORDER),
        sample_rng=stream_generator(spec.seed, Stream.TRAINING, device),
        loss_config=losses.LossConfig(
            entropy_weight=cfg.entropy_lambda,
            entropy_scale=cfg.entropy_scale,
            positive_classes=positives,
            reference_class=reference if reference is not None else 0,
            class_weights=class_weight_tensor(cfg, data, device),
            mask_weight=cfg.mask_loss_weight,
            mask_target=cfg.mask_target,
        ),
        contrastive_start=cfg.contrastive_start if contrastive else None,
    )


def train_epoch(trainer: Trainer, epoch: int, state: dict[str, Any]) -> dict[str, Any]:
    """One pass over the training images, then validation; returns the epoch's history row."""
    spec, cfg, model, data = trainer.spec, trainer.spec.training, trainer.model, trainer.data
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(data.train), generator=trainer.shuffle_rng).tolist()
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    loss_config = trainer.loss_config
    if trainer.contrastive_start is not None and epoch > trainer.contrastive_start:
        loss_config = replace(loss_config, contrastive=True)
    parts_sum: dict[str, float] = {}
    correct = seen = 0
    input_values = 0  # float32 values of the images the forward passes read (views, tiles, sub-tiles)
    unique_tiles: list[int] = []  # per image: distinct stage-1 cells drawn (two-stage models)
    logit_spreads = []  # per batch of two or more images; one image says nothing about it
    autocast = spec.settings.mixed_precision and trainer.device.type == "cuda"
    macs_per_image = math.nan  # of this epoch's first step (forward, losses, backward)
    for number, batch in enumerate(tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, mininterval=5)):
        images = [CountingImage(data.train.image(i)) for i in batch]
        labels = torch.tensor([data.train.label(i) for i in batch], device=trainer.device)
        masks = batch_masks(data.train, batch) if loss_config.mask_weight > 0 else None
        # The first step of the epoch runs under a FLOP counter (which changes nothing it computes).
        counter = FlopCounterMode(display=False) if number == 0 else contextlib.nullcontext()
        with counter:
            with torch.autocast(trainer.device.type, enabled=autocast):
                out = model(images, generator=trainer.sample_rng)
                input_values += sum(image.values for image in images)  # before the contrastive pass reads more
                parts = losses.total_loss(
                    out, labels, loss_config, model=model, images=images, generator=trainer.sample_rng, masks=masks
                )
            if not torch.isfinite(parts.total):
                raise UserError(
                    f"run {spec.run}: the training loss became {parts.total.item()} in epoch {epoch}; "
                    "lower the learning rate (training.lr) or check the input data"
                )
            trainer.optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
        if number == 0:
            macs_per_image = counter.get_total_flops() / 2 / len(batch)  # FlopCounterMode: 2 FLOPs a MAC
        unique_tiles += tiles_opened(out)
        if cfg.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        trainer.optimizer.step()
        for name, value in parts.as_floats().items():
            parts_sum[name] = parts_sum.get(name, 0.0) + value * len(batch)
        correct += int((out.logits.argmax(1) == labels).sum())
        seen += len(batch)
        if len(batch) > 1:
            logit_spreads.append(float(out.logits.detach().std(0).max()))
    trainer.scheduler.step()
    _warn_if_collapsed(spec, epoch, logit_spreads, state)
    before = state["history"][-1] if state["history"] else {}

    # Validation only chooses between epochs: a one-epoch run keeps its only model without it.
    validates = len(data.val) > 0 and cfg.epochs > 1
    val_accuracy = accuracy(model, data.val, trainer.device, spec.seed, cfg.sampling_at_test) if validates else math.nan
    return {
        "epoch": epoch,
        "train_loss": parts_sum["total"] / seen,
        "train_accuracy": correct / seen,
        "val_accuracy": val_accuracy,
        "lr": trainer.scheduler.get_last_lr()[0],
        "seconds": time.perf_counter() - started,
        **{f"mean_{name}": total / seen for name, total in parts_sum.items() if name != "total"},
        "mean_input_mb": input_values * 4 / 2**20 / seen,
        "mean_unique_tiles": sum(unique_tiles) / len(unique_tiles) if unique_tiles else math.nan,
        "steps": _cumulative(before, "steps", len(batches)),
        "images_seen": _cumulative(before, "images_seen", seen),
        "train_gmacs": _cumulative(before, "train_gmacs", macs_per_image * seen / 1e9),
    }


def _cumulative(before: dict[str, Any], column: str, value: float) -> float:
    """``value`` plus the previous epoch's total; NaN after a history row without the column (a run
    resumed from a checkpoint written before the column existed), whose total is unknown."""
    if not before:
        return value
    return before.get(column, math.nan) + value


def tiles_opened(output: ModelOutput) -> list[int]:
    """Per image, how many distinct stage-1 cells (tiles) the model drew and read at the stage-2
    scale; empty for models without per-cell draw counts (one-stage models, CNNs)."""
    return [int((a.counts > 0).sum()) for a in output.attention if a.counts is not None]


def _warn_if_collapsed(spec: RunSpec, epoch: int, logit_spreads: list[float], state: dict[str, Any]) -> None:
    """Say once per run when the logits stopped depending on the image (they will not recover)."""
    collapsed = bool(logit_spreads) and max(logit_spreads) < COLLAPSED_SPREAD
    if collapsed and not state.get("collapse_reported"):
        log.warning(
            "run %s, epoch %d: the logits were the same for every training image (largest spread "
            "across a batch %.1e): the model's output no longer depends on its input and training "
            "will not bring it back (with the LeNet feature net, typically every ReLU after its "
            "second convolution has died). Try another seed or a lower training.lr.",
            spec.run, epoch, max(logit_spreads),
        )
        state["collapse_reported"] = True


def write_outputs(trainer: Trainer, state: dict[str, Any], outputs: RunOutputs) -> dict[str, Any]:
    """The best weights with the metadata a later step needs to rebuild and use the model."""
    spec = trainer.spec
    metadata = {
        "dataset": spec.dataset,
        "method": spec.method,
        "model_type": spec.model.type,
        "model_params": spec.model.params.to_dict(),
        "classes": trainer.data.classes,
        "mpp": trainer.data.train.cache.mpp,  # level-0 pixel size it was trained at (zoomin predict checks it)
        "sampling_at_test": spec.training.sampling_at_test,
        "test_draws": spec.training.test_draws,  # zoomin predict averages as many draws as the evaluation
        "seed": spec.seed,
        "run": spec.run,
        "best_epoch": state.get("best_epoch", state["epoch"]),
        "device": str(trainer.device),
        "torch": str(torch.__version__),
    }
    with atomic_path(outputs.model) as tmp:
        torch.save({"state_dict": state["best_state"], "metadata": metadata}, tmp)
    with atomic_path(outputs.history) as tmp:
        write_history(state["history"], spec.seed, tmp)
    return metadata


def write_history(rows: list[dict[str, Any]], seed: int, path: Path) -> None:
    """history.csv: ``seed``, then every column in the order the rows first name it, one line per
    epoch; NaN, and a column a row lacks, as an empty field, which pandas reads back as NaN. Written
    with the csv module so that a training job does not import pandas (half a second)."""
    columns = ["seed", *dict.fromkeys(name for row in rows for name in row)]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({"seed": seed, **{name: _csv_field(value) for name, value in row.items()}})


def _csv_field(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def batch_masks(subset: Subset, batch: list[int]) -> list[torch.Tensor | None]:
    """Pixel annotations of a batch for the mask loss: each image's mask view at the largest cached
    scale as ``(h, w)`` floats in [0, 1] (object fraction), ``None`` where an image has no mask."""
    scale = max(subset.cache.scales)
    masks: list[torch.Tensor | None] = []
    for i in batch:
        mask = subset.cache.mask_view(subset.image_id(i), scale)
        masks.append(None if mask is None else torch.from_numpy(mask).float().div_(255.0))
    return masks


def run_identity(spec: RunSpec, data: RunData) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: run, seed, model, training settings (all but the
    number of epochs, which may grow, and the test-time draws, which training never uses) and the
    images the run trains and validates on. A checkpoint of this run left by an earlier config or
    dataset is not continued: training starts over."""
    images = [
        [subset.image_id(i) for i in range(len(subset))] + [subset.label(i) for i in range(len(subset))]
        for subset in (data.train, data.val)
    ]
    return {
        "model_type": spec.model.type,
        "run": spec.run,
        "seed": spec.seed,
        "model_params": spec.model.params.to_dict(),
        "training": {
            key: value for key, value in spec.training.to_dict().items() if key not in ("epochs", "test_draws")
        },
        "data": hashlib.sha256(json.dumps([list(data.classes), images]).encode()).hexdigest(),
    }


def class_weight_tensor(cfg: TrainingConfig, data: RunData, device: torch.device) -> torch.Tensor | None:
    """``None``, the configured weights, or ``inverse_frequency`` over the training labels."""
    setting = cfg.class_weights
    if setting is None:
        return None
    if setting == "inverse_frequency":
        counts = torch.bincount(torch.tensor(data.train.labels), minlength=len(data.classes)).float()
        weights = counts.sum() / (len(data.classes) * counts.clamp_min(1))
        return weights.to(device)
    if len(setting) != len(data.classes):
        raise UserError(
            f"config key 'training.class_weights': {len(setting)} weights for {len(data.classes)} classes"
        )
    return torch.tensor(setting, dtype=torch.float32, device=device)
