"""Training one (dataset, method, run): a loop you can read top to bottom.

Every epoch ends with an atomic checkpoint (model, optimiser, scheduler, RNG states, history) in
``checkpoint_dir``, which lies outside the rule's outputs; a re-run after a kill resumes from it
and ends with the same weights as an uninterrupted run (on the CPU, bit for bit). The model kept is
the one with the best validation accuracy (the last epoch when there is no validation set).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from zoomin import losses
from zoomin.atomic import atomic_path
from zoomin.checkpoints import load_checkpoint, save_checkpoint, stale_reason
from zoomin.data.splits import RunData, load_run_data
from zoomin.device import choose_device
from zoomin.errors import UserError
from zoomin.models import build_model

log = logging.getLogger(__name__)

CONTRASTIVE_MODELS = ("zoomin",)  # the in-sample contrastive loss is part of Zoom-In, not of the baselines


@dataclass
class TrainingJob:
    """Everything one training run needs; built by the workflow script from the config."""

    views: Path
    model_type: str
    model_params: dict[str, Any]
    training: dict[str, Any]
    dataset_config: dict[str, Any]
    run: str
    seed: int
    checkpoint_dir: Path
    out_model: Path
    out_history: Path
    device: str = "auto"
    mixed_precision: bool = False


# Below this spread of the logits across the images of every batch of an epoch, the model is
# treated as collapsed. At initialisation the LeNet models' logits already differ by 4e-3 or more
# within a batch of four (colon and traffic stand-ins); a collapsed model's differ by 0.
COLLAPSED_SPREAD = 1e-4


def train(job: TrainingJob) -> dict[str, Any]:
    """Train, checkpointing every epoch; write the best model and the history. Returns a summary."""
    device = choose_device(job.device)
    data = load_run_data(job.views, job.dataset_config, job.run)
    cfg = job.training
    log.info(
        "run %s: %d train / %d val / %d test images, classes %s, seed %d",
        job.run, len(data.train), len(data.val), len(data.test), data.classes, job.seed,
    )

    torch.manual_seed(job.seed)
    model = build_model(job.model_type, len(data.classes), **job.model_params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"])
    shuffle_rng = torch.Generator().manual_seed(job.seed)
    sample_rng = torch.Generator(device=device).manual_seed(job.seed + 1)
    class_weights = losses_class_weights(cfg["class_weights"], data, device)
    reference = data.class_index(job.dataset_config.get("reference_class"))
    positives = [i for i in range(len(data.classes)) if i != reference] if reference is not None else []
    mask_weight = float(cfg.get("mask_loss_weight") or 0.0)
    if mask_weight > 0 and not data.train.cache.has_masks:
        raise UserError(
            f"training.mask_loss_weight is {mask_weight} but the view cache {job.views} has no masks "
            "(pixel annotations); set it to 0 or construct the dataset with masks"
        )

    state = {"epoch": 0, "history": [], "best_accuracy": -1.0, "best_state": None}
    checkpoint_path = job.checkpoint_dir / "last.pt"
    identity = run_identity(job, data)
    outdated = stale_reason(checkpoint_path, identity, cfg["epochs"]) if checkpoint_path.exists() else None
    if outdated is not None:  # Snakemake re-runs a job whose params changed: so do we, from scratch
        log.warning("checkpoint %s is from an earlier configuration (%s): starting over", checkpoint_path, outdated)
        checkpoint_path.unlink()
    if checkpoint_path.exists():
        state = load_checkpoint(
            checkpoint_path, model, optimizer, scheduler, shuffle_rng, sample_rng, expected=identity
        )
        log.info("resumed from checkpoint %s after epoch %d", checkpoint_path, state["epoch"])

    for epoch in range(state["epoch"] + 1, cfg["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.train), generator=shuffle_rng).tolist()
        batches = [order[i : i + cfg["batch_size"]] for i in range(0, len(order), cfg["batch_size"])]
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        logit_spreads = []  # per batch of two or more images; one image says nothing about it
        use_contrastive = (
            bool(positives)
            and job.model_type in CONTRASTIVE_MODELS
            and cfg.get("contrastive_start") is not None
            and epoch > cfg["contrastive_start"]
        )
        progress = tqdm(batches, desc=f"epoch {epoch}/{cfg['epochs']}", leave=False, mininterval=5)
        for batch in progress:
            images = [data.train.image(i) for i in batch]
            labels = torch.tensor([data.train.label(i) for i in batch], device=device)
            masks = batch_masks(data.train, batch) if mask_weight > 0 else None
            with torch.autocast(device.type, enabled=job.mixed_precision and device.type == "cuda"):
                out = model(images, generator=sample_rng)
                parts = losses.total_loss(
                    out, labels,
                    losses.LossConfig(
                        entropy_weight=cfg["entropy_lambda"],
                        contrastive=use_contrastive,
                        positive_classes=tuple(positives),
                        reference_class=reference if reference is not None else 0,
                        class_weights=class_weights,
                        mask_weight=mask_weight,
                    ),
                    model=model, images=images, generator=sample_rng, masks=masks,
                )
            loss = parts.total
            if not torch.isfinite(loss):
                raise UserError(
                    f"run {job.run}: the training loss became {loss.item()} in epoch {epoch}; "
                    "lower the learning rate (training.lr) or check the input data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.get("clip_grad_norm"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad_norm"])
            optimizer.step()
            totals["loss"] += loss.item() * len(batch)
            totals["correct"] += int((out.logits.argmax(1) == labels).sum())
            totals["seen"] += len(batch)
            if len(batch) > 1:
                logit_spreads.append(float(out.logits.detach().std(0).max()))
        scheduler.step()
        collapsed = bool(logit_spreads) and max(logit_spreads) < COLLAPSED_SPREAD
        if collapsed and not state.get("collapse_reported"):
            log.warning(
                "run %s, epoch %d: the logits were the same for every training image (largest spread "
                "across a batch %.1e): the model's output no longer depends on its input and training "
                "will not bring it back (with the LeNet feature net, typically every ReLU after its "
                "second convolution has died). Try another seed or a lower training.lr.",
                job.run, epoch, max(logit_spreads),
            )
            state["collapse_reported"] = True

        val_accuracy = accuracy(model, data.val, device, job.seed, cfg["sampling_at_test"]) if len(data.val) else math.nan
        row = {
            "epoch": epoch,
            "train_loss": totals["loss"] / totals["seen"],
            "train_accuracy": totals["correct"] / totals["seen"],
            "val_accuracy": val_accuracy,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
        }
        state["history"].append(row)
        score = val_accuracy if not math.isnan(val_accuracy) else float(epoch)
        if score >= state["best_accuracy"]:
            state["best_accuracy"] = score
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state["best_epoch"] = epoch
        state["epoch"] = epoch
        log.info(
            "epoch %d: loss %.4f train acc %.3f val acc %.3f (%.1fs)",
            epoch, row["train_loss"], row["train_accuracy"], val_accuracy, row["seconds"],
        )
        save_checkpoint(
            checkpoint_path, model, optimizer, scheduler, shuffle_rng, sample_rng, state, identity=identity
        )

    metadata = {
        "model_type": job.model_type,
        "model_params": job.model_params,
        "classes": data.classes,
        "seed": job.seed,
        "run": job.run,
        "best_epoch": state.get("best_epoch", state["epoch"]),
        "device": str(device),
        "torch": str(torch.__version__),
    }
    with atomic_path(job.out_model) as tmp:
        torch.save({"state_dict": state["best_state"], "metadata": metadata}, tmp)
    with atomic_path(job.out_history) as tmp:
        frame = pd.DataFrame(state["history"])
        frame.insert(0, "seed", job.seed)
        frame.to_csv(tmp, index=False)
    return metadata


def batch_masks(subset: Any, batch: list[int]) -> list[torch.Tensor | None]:
    """Pixel annotations of a batch for the mask loss: each image's mask view at the largest cached
    scale as ``(h, w)`` floats in [0, 1] (object fraction), ``None`` where an image has no mask."""
    scale = max(subset.cache.scales)
    masks: list[torch.Tensor | None] = []
    for i in batch:
        mask = subset.cache.mask_view(subset.image_id(i), scale)
        masks.append(None if mask is None else torch.from_numpy(mask).float().div_(255.0))
    return masks


def run_identity(job: TrainingJob, data: RunData) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: run, seed, model, training settings (all but the
    number of epochs, which may grow) and the images the run trains and validates on. A checkpoint
    of this run left by an earlier config or dataset is not continued: training starts over."""
    images = [
        [subset.image_id(i) for i in range(len(subset))] + [subset.label(i) for i in range(len(subset))]
        for subset in (data.train, data.val)
    ]
    return {
        "model_type": job.model_type,
        "run": job.run,
        "seed": job.seed,
        "model_params": dict(job.model_params),
        "training": {key: value for key, value in job.training.items() if key != "epochs"},
        "data": hashlib.sha256(json.dumps([list(data.classes), images]).encode()).hexdigest(),
    }


def losses_class_weights(setting: Any, data: RunData, device: torch.device) -> torch.Tensor | None:
    """``None``, explicit weights, or ``inverse_frequency`` over the training labels."""
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


@torch.no_grad()
def predict(model, subset, device: torch.device, seed: int, sampling: str, batch_size: int = 8) -> list[int]:
    """Predicted class per image of ``subset``; Monte Carlo draws come from a generator seeded by ``seed``."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed + 7)
    predictions: list[int] = []
    for start in range(0, len(subset), batch_size):
        images = [subset.image(i) for i in range(start, min(start + batch_size, len(subset)))]
        out = model(images, generator=generator, sampling=sampling)
        predictions.extend(out.logits.argmax(1).tolist())
    return predictions


def accuracy(model, subset, device: torch.device, seed: int, sampling: str) -> float:
    predictions = predict(model, subset, device, seed, sampling)
    return sum(int(p == subset.label(i)) for i, p in enumerate(predictions)) / max(len(subset), 1)
