"""Why the in-sample contrastive loss does not help on a stand-in: per-epoch diagnostics of one run.

    python benchmarks/contrastive.py [--config config/config.yaml] [--dataset colon]
        [--method zoomin_lenet] [--run r0f0] [--epochs 20] [--contrastive-start 10|none]
        [--images 24] [--work benchmarks/out/contrastive] [--out JSONL]

Trains one run of a Zoom-In method with the workflow's own ``zoomin.training.loop.setup`` and
``train_epoch`` (the dataset is constructed with its masks, ``masks: true``, under ``--work``) and
after every epoch measures, on up to ``--images`` positive training images (docs/contrastive.md):

* ``ent_a``: the stage-1 attention's entropy over its maximum, ln(tiles) (1 = flat);
* ``tv_a``, ``tv_b``: total variation between ``a`` and ``normalise(1 - a)``, and between ``b_t``
  and ``normalise(1 - b_t)`` (mean over the drawn tiles): how different the contrastive draw is;
* ``hit_ord``, ``hit_con``, ``hit_unif``: the share of sub-tiles that overlap the annotated object,
  for the ordinary draw, the contrastive draw and uniformly random centres;
* ``p_ord``, ``p_con``: the mean predicted probability of the image's class for the ordinary and
  the contrastive representation;
* ``cos``: the cosine between the parameter gradients of the positives' cross-entropy and of the
  contrastive loss (-1: the two losses pull every parameter in opposite directions).

At the end the weights of the best validation epoch are tested, as the workflow does. Prints one
JSON object per epoch (and writes them to ``--out``). Takes a few minutes per run on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from zoomin.config.load import load
from zoomin.data.constructed import read_constructed
from zoomin.data.sources import construct_dataset
from zoomin.data.view_cache import build_view_cache, load_mask
from zoomin.models.distributions import complement, entropy
from zoomin.training.inference import accuracy
from zoomin.training.loop import setup, train_epoch
from zoomin.training.losses import contrastive_loss, cross_entropy

REPO = Path(__file__).resolve().parents[1]


def views_with_masks(config: Path, dataset: str, work: Path) -> Path:
    """The dataset constructed with masks and its view cache (made once under ``work``)."""
    experiment = load(config)
    views = work / dataset / "views.h5"
    if not views.exists():
        ds = experiment.datasets[dataset]
        constructed = work / dataset / "constructed"
        construct_dataset(ds.source, None, constructed, name=dataset, params={**ds.construct, "masks": True})
        build_view_cache(constructed, experiment.cache_scales(dataset, slides=False), views, progress=False)
    return views


def coverage(mask: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """Share of each ``size`` x ``size`` sub-tile (full-resolution centres) that is object."""
    out = []
    for cy, cx in np.asarray(centres, dtype=float).reshape(-1, 2):
        top, left = int(np.floor(cy - size / 2 + 0.5)), int(np.floor(cx - size / 2 + 0.5))
        window = mask[max(top, 0) : max(top + size, 0), max(left, 0) : max(left + size, 0)]
        out.append(window.sum() / (size * size))
    return np.array(out)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def diagnose(model, images, masks, label: int, reference: int, seed: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.eval()
    with torch.no_grad():
        ordinary = model.represent(images, generator, "sample")
        contrast = model.represent(images, generator, "sample", contrast=True)
        p_ord = torch.softmax(model.classifier(ordinary.features), 1)[:, label].mean().item()
        p_con = torch.softmax(model.classifier(contrast.features), 1)[:, label].mean().item()
    values: dict[str, list[float]] = {key: [] for key in ("ent_a", "tv_a", "tv_b", "hit_ord", "hit_con", "hit_unif")}
    for image, mask, att, con in zip(images, masks, ordinary.attention, contrast.attention):
        a = att.stage1.probs.reshape(-1)
        values["ent_a"].append(float(entropy(a)) / math.log(a.numel()))
        values["tv_a"].append(total_variation(a, complement(a)))
        for amap in att.stage2.values():
            b = amap.probs.reshape(-1)
            values["tv_b"].append(total_variation(b, complement(b)))
        size = att.sampled.size
        height, width = image.size
        uniform = np.stack([rng.uniform(0, height, 200), rng.uniform(0, width, 200)], axis=1)
        for key, centres in (("hit_ord", att.sampled.centres), ("hit_con", con.sampled.centres), ("hit_unif", uniform)):
            values[key].append(float((coverage(mask, np.asarray(centres), size) > 0).mean()))
    model.train()
    labels = torch.full((len(images),), label, dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    ce = cross_entropy(model(images, generator=generator).logits, labels)
    con = contrastive_loss(model, images, labels, (label,), reference, generator)
    grads = [torch.autograd.grad(loss, params, allow_unused=True) for loss in (ce, con)]
    flat = [torch.cat([g.reshape(-1) for g in gs if g is not None]) for gs in grads]
    cos = float(torch.nn.functional.cosine_similarity(flat[0], flat[1], dim=0))
    return {**{key: float(np.mean(v)) for key, v in values.items()}, "p_ord": p_ord, "p_con": p_con, "cos": cos}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--dataset", default="colon")
    parser.add_argument("--method", default="zoomin_lenet")
    parser.add_argument("--run", default="r0f0")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--contrastive-start", default="10", help="an epoch, or 'none' (off)")
    parser.add_argument("--images", type=int, default=24, help="positive training images measured")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "contrastive")
    parser.add_argument("--out", type=Path, default=None, help="JSONL to write (default: under --work)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    views = views_with_masks(args.config, args.dataset, args.work)
    spec = load(args.config).run(args.dataset, args.method, args.run)
    start = None if args.contrastive_start.lower() == "none" else int(args.contrastive_start)
    training = spec.training.replace(contrastive_start=start, **({"epochs": args.epochs} if args.epochs else {}))
    spec = replace(spec, training=training)
    trainer = setup(spec, views)
    data, reference = trainer.data, trainer.loss_config.reference_class
    label = trainer.loss_config.positive_classes[0]
    chosen = [i for i in range(len(data.train)) if data.train.label(i) == label][: args.images]
    images = [data.train.image(i) for i in chosen]
    constructed = read_constructed(views.parent / "constructed")
    records = {record.image_id: record for record in constructed.records}
    masks = [
        load_mask(constructed.mask_path(records[data.train.image_id(i)]), data.train.image(i).size) for i in chosen
    ]

    out = args.out or args.work / f"{args.dataset}_{args.method}_{args.run}_start{args.contrastive_start}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {"epoch": 0, "history": [], "best_accuracy": -1.0, "best_state": None}
    with out.open("w") as log:
        for epoch in range(1, spec.training.epochs + 1):
            row = train_epoch(trainer, epoch, state)
            state["history"].append(row)
            if row["val_accuracy"] >= state["best_accuracy"]:
                state["best_accuracy"] = row["val_accuracy"]
                state["best_state"] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
                state["best_epoch"] = epoch
            record = {"epoch": epoch, "loss": row["train_loss"], "contrastive": row["mean_contrastive"],
                      "val_accuracy": row["val_accuracy"],
                      **diagnose(trainer.model, images, masks, label, reference, spec.seed + epoch)}
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}), flush=True)
            log.write(json.dumps(record) + "\n")
        trainer.model.load_state_dict(state["best_state"])
        test = 100 * accuracy(trainer.model, data.test, trainer.device, spec.seed, spec.training.sampling_at_test)
        summary = {"best_epoch": state["best_epoch"], "test_accuracy": test}
        print(json.dumps(summary))
        log.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
