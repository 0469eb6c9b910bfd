"""Does the control variate of the attention's score-function term help? Gradient variance and the ln 2 plateau.

    python benchmarks/control_variate.py variance [--datasets colon needle_camelyon]
        [--methods zoomin_lenet ats] [--batches 4] [--draws 100] [--mid-epochs 10] [--out CSV]
    python benchmarks/control_variate.py plateau [--dataset colon] [--method zoomin_lenet]
        [--seeds 0 1 2 3 4] [--epochs N] [--out CSV]

Both parts train and measure with the workflow's own code (``zoomin.training.loop.setup`` and
``train_epoch``, the loss of ``zoomin.training.losses.total_loss``) on the config's stand-ins
(default ``config/config.yaml``; constructed once under ``--work``), on run ``r0f0`` / the
dataset's first run, one thread.

``variance``: for each (dataset, method), the model of the run's seed is measured at
initialisation and again after ``--mid-epochs`` epochs of ordinary training (control variate off).
For ``--batches`` fixed training batches (the run's batch size) the gradient of the training loss
with respect to each attention net is taken over ``--draws`` Monte Carlo draws, with the control
variate off and on (the same weights; the value of every forward pass is the same either way).
Columns: ``var_off`` / ``var_on``, the total variance of the gradient (the trace of its covariance
over the draws, the mean over the batches); ``ratio = var_off / var_on``; ``signal`` the squared
norm of the mean gradient (the same with and without, up to Monte Carlo error). ``ceiling`` (the
innermost stage): the most a constant baseline per cell (a Zoom-In tile, an ATS view) could shrink
the variance of one draw's score term, ``E[(u.f)^2 |g|^2] / E[(u.f - mu)^2 |g|^2]`` with
``g = grad log p`` of the drawn position, ``u`` the classifier's logit-difference direction and
``mu`` the cell's mean of ``u.f``, over 48 positions drawn from each cell's attention in the
measured images (:func:`baseline_ceiling`).

``plateau``: ``--seeds`` trainings of the method (model initialisation and draws from the seed),
with the control variate off and on. Columns: per epoch the mean training loss, and per run
``exit_epoch``, the first epoch whose training loss is below 0.9 ln 2 (the loss sits at ln 2 while
the attention is flat and the classifier has nothing to go on), and the test accuracy of the epoch
of best validation accuracy, as the workflow keeps it.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zoomin.config.load import load
from zoomin.config.run import ModelSpec, RunSpec
from zoomin.data.sources import construct_dataset
from zoomin.data.view_cache import build_view_cache
from zoomin.training import losses
from zoomin.training.inference import accuracy
from zoomin.training.loop import setup, train_epoch

REPO = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("benchmarks.control_variate")
PLATEAU_EXIT = 0.9 * math.log(2)
ATTENTION_NETS = {"zoomin": ("tile_attention", "subtile_attention"), "ats": ("attention",)}


def prepare_views(config: Path, dataset: str, work: Path) -> Path:
    """The stand-in constructed and its views cached (once; later calls reuse them)."""
    experiment = load(config)
    views = work / dataset / "views.h5"
    if not views.exists():
        ds = experiment.datasets[dataset]
        constructed = work / dataset / "constructed"
        construct_dataset(ds.source, None, constructed, name=dataset, params=dict(ds.construct))
        build_view_cache(constructed, experiment.cache_scales(dataset, slides=False), views, progress=False)
    return views


def run_spec(config: Path, dataset: str, method: str, seed: int | None = None, **training) -> RunSpec:
    experiment = load(config)
    spec = experiment.run(dataset, method, experiment.datasets[dataset].runs[0])
    if training:
        spec = replace(spec, training=spec.training.replace(**training))
    return spec if seed is None else replace(spec, seed=seed)


def with_control_variate(spec: RunSpec, on: bool) -> RunSpec:
    # dataclasses.replace: ATSParams has a parameter called ``replace``
    return replace(spec, model=ModelSpec(spec.model.type, replace(spec.model.params, control_variate=on)))


def gradient_variance(
    trainer, nets: tuple[str, ...], batches: int, draws: int, seed: int
) -> dict[tuple[str, bool], tuple[float, float]]:
    """Per attention net, the total variance and the squared mean of the loss gradient over draws,
    with the control variate off and on, on the first ``batches`` batches of a fixed order."""
    model, data, size = trainer.model, trainer.data, trainer.spec.training.batch_size
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed)).tolist()
    model.train()
    measured = {}
    for flag in (False, True):
        model.control_variate = flag
        totals = {net: [0.0, 0.0] for net in nets}
        for b in range(batches):
            batch = order[b * size : (b + 1) * size]
            images = [data.train.image(i) for i in batch]
            labels = torch.tensor([data.train.label(i) for i in batch])
            generator = torch.Generator().manual_seed(seed + 1000 * b)  # the same draws with and without
            samples = {net: [] for net in nets}
            for _ in range(draws):
                model.zero_grad(set_to_none=True)
                out = model(images, generator=generator)
                losses.total_loss(out, labels, trainer.loss_config, model=model, images=images).total.backward()
                for net in nets:
                    params = getattr(model, net).parameters()
                    samples[net].append(torch.cat([p.grad.reshape(-1) for p in params]))
            for net in nets:
                stacked = torch.stack(samples[net]).double()
                totals[net][0] += float(stacked.var(dim=0).sum()) / batches
                totals[net][1] += float(stacked.mean(dim=0).pow(2).sum()) / batches
        for net, (variance, signal) in totals.items():
            measured[net, flag] = (variance, signal)
    model.control_variate = False
    return measured


def baseline_ceiling(model, images, samples: int = 48, seed: int = 0) -> float:
    """How much a constant baseline per cell (a Zoom-In tile; the view for ATS) could shrink the
    variance of the innermost stage's score term at most, for one draw:
    ``E[(u.f)^2 |g|^2] / E[(u.f - mu_cell)^2 |g|^2]``, ``g = grad log p`` of the drawn position
    with respect to that stage's attention net, ``u`` the classifier's logit-difference direction
    (for two classes the loss gradient with respect to the representation is a multiple of ``u``),
    ``mu_cell`` the cell's mean of ``u.f`` under its attention, over ``samples`` positions drawn
    from the attention of each cell of ``images``."""
    from zoomin.models.ats import view_centre_array
    from zoomin.models.zoomin_net import subtile_centre_array

    generator = torch.Generator().manual_seed(seed)
    u = (model.classifier.weight[1] - model.classifier.weight[0]).detach()
    two_stage = hasattr(model, "subtile_attention")
    net = model.subtile_attention if two_stage else model.attention
    params = list(net.parameters())
    plain, centred = [], []
    for image in images:
        if two_stage:
            rows, cols = model.grid(image)
            cells = [(r, c) for r in range(rows) for c in range(cols)]
            views = [image.region_view(r * model.tile, c * model.tile, model.tile, model.s2) for r, c in cells]
        else:
            cells, views = [None], [image.view(model.scale)]
        for cell, view in zip(cells, views):
            logits = net(view[None].float())[0]
            log_p = torch.log_softmax(logits.reshape(-1), dim=0)
            drawn = torch.multinomial(log_p.detach().exp(), samples, replacement=True, generator=generator)
            if two_stage:
                centres = subtile_centre_array(np.tile(cell, (samples, 1)), drawn.numpy(), model.tile, model.view2)
            else:
                shape = np.array([logits.shape])
                centres = view_centre_array(drawn.numpy(), logits.shape[1], shape, np.array([image.size]))
            patches = torch.from_numpy(image.patch_arrays(centres, model.subtile if two_stage else model.patch))
            with torch.no_grad():
                scores = model.features(patches.permute(0, 3, 1, 2).float().div(255)) @ u
            norms = torch.stack([
                sum(g.pow(2).sum() for g in torch.autograd.grad(log_p[j], params, retain_graph=True))
                for j in drawn.tolist()
            ])
            plain.append(float((scores.pow(2) * norms).mean()))
            centred.append(float(((scores - scores.mean()).pow(2) * norms).mean()))
    return float(np.mean(plain) / np.mean(centred))


def variance_part(args) -> pd.DataFrame:
    rows = []
    for dataset in args.datasets:
        views = prepare_views(args.config, dataset, args.work)
        for method in args.methods:
            spec = with_control_variate(run_spec(args.config, dataset, method), False)
            trainer = setup(spec, views)
            nets = ATTENTION_NETS[spec.model.type]
            state = {"epoch": 0, "history": [], "best_accuracy": -1.0, "best_state": None}
            stages = [("init", 0)] + ([(f"epoch {args.mid_epochs}", args.mid_epochs)] if args.mid_epochs else [])
            for stage, epochs in stages:
                for epoch in range(state["epoch"] + 1, epochs + 1):
                    state["history"].append(train_epoch(trainer, epoch, state))
                    state["epoch"] = epoch
                started = time.perf_counter()
                measured = gradient_variance(trainer, nets, args.batches, args.draws, spec.seed)
                loss = state["history"][-1]["train_loss"] if state["history"] else math.nan
                sample = [trainer.data.train.image(i) for i in range(args.batches * spec.training.batch_size)]
                ceiling = baseline_ceiling(trainer.model, sample, seed=spec.seed)
                for net in nets:
                    (var_off, signal_off), (var_on, signal_on) = measured[net, False], measured[net, True]
                    rows.append({
                        "dataset": dataset, "method": method, "stage": stage, "train_loss": loss, "net": net,
                        "var_off": var_off, "var_on": var_on, "ratio": var_off / var_on,
                        "signal_off": signal_off, "signal_on": signal_on,
                        "ceiling": ceiling if net in ("subtile_attention", "attention") else math.nan,
                    })
                LOG.info("%s / %s at %s: %.0f s", dataset, method, stage, time.perf_counter() - started)
                print(pd.DataFrame(rows).tail(len(nets)).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def plateau_part(args) -> pd.DataFrame:
    views = prepare_views(args.config, args.dataset, args.work)
    rows = []
    for seed in args.seeds:
        for flag in (False, True):
            overrides = {"epochs": args.epochs} if args.epochs else {}
            spec = with_control_variate(run_spec(args.config, args.dataset, args.method, seed, **overrides), flag)
            trainer = setup(spec, views)
            state = {"epoch": 0, "history": [], "best_accuracy": -1.0, "best_state": None}
            for epoch in range(1, spec.training.epochs + 1):
                row = train_epoch(trainer, epoch, state)
                state["history"].append(row)
                state["epoch"] = epoch
                if row["val_accuracy"] >= state["best_accuracy"]:
                    state["best_accuracy"] = row["val_accuracy"]
                    state["best_state"] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            trainer.model.load_state_dict(state["best_state"])
            test = accuracy(trainer.model, trainer.data.test, trainer.device, spec.seed, spec.training.sampling_at_test)
            curve = [row["train_loss"] for row in state["history"]]
            below = [epoch for epoch, loss in enumerate(curve, 1) if loss < PLATEAU_EXIT]
            rows.append({
                "dataset": args.dataset, "method": args.method, "seed": seed, "control_variate": flag,
                "exit_epoch": below[0] if below else math.nan, "final_loss": curve[-1], "test_accuracy": 100 * test,
                **{f"loss_{epoch}": loss for epoch, loss in enumerate(curve, 1)},
            })
            LOG.info("seed %d, control variate %s: exit epoch %s, losses %s", seed, flag, rows[-1]["exit_epoch"],
                     " ".join(f"{loss:.3f}" for loss in curve))
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("variance", "plateau"))
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "control_variate")
    parser.add_argument("--datasets", nargs="*", default=["colon", "needle_camelyon"], help="variance")
    parser.add_argument("--methods", nargs="*", default=["zoomin_lenet", "ats"], help="variance")
    parser.add_argument("--batches", type=int, default=4, help="variance: training batches measured")
    parser.add_argument("--draws", type=int, default=100, help="variance: Monte Carlo draws per batch")
    parser.add_argument("--mid-epochs", type=int, default=10, help="variance: epochs before the second measurement")
    parser.add_argument("--dataset", default="colon", help="plateau")
    parser.add_argument("--method", default="zoomin_lenet", help="plateau")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4], help="plateau")
    parser.add_argument("--epochs", type=int, default=None, help="plateau: default the config's")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    LOG.setLevel(logging.INFO)
    torch.set_num_threads(1)
    started = time.perf_counter()
    table = variance_part(args) if args.part == "variance" else plateau_part(args)
    out = args.out or args.work / f"{args.part}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    shown = table if args.part == "variance" else table[[c for c in table.columns if not c.startswith("loss_")]]
    out.with_suffix(".md").write_text(
        f"Command: `python {' '.join(sys.argv)}`; torch {torch.__version__}, 1 thread; "
        f"{time.perf_counter() - started:.0f} s.\n\n{shown.to_markdown(index=False, floatfmt='.4g')}\n"
    )
    print(shown.to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
