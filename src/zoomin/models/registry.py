"""The model registry: one record per model type, and the only place its facts are written.

A record (:class:`ModelType`) says how to build the model, which parameters it takes (a
:class:`ModelParams` record: defaults, bounds and the rules relating them, e.g. Zoom-In's
``s1 < s2``), which view scales it reads (so the workflow knows what to cache), the tile side of
its slide caches, whether it has the in-sample contrastive branch, and the kind of attention it
returns. The workflow, the config checks and training ask the registry; nothing else branches on
a model's name.

Adding a model type: write its module (a ``nn.Module`` built as ``Model(num_classes, params)``,
called as ``model(images, generator=None, sampling="sample")`` and returning a
:class:`zoomin.models.output.ModelOutput`), its parameter record in :mod:`zoomin.models.params`,
and one :class:`ModelType` entry below. Builders are imported only when a model is built, so
planning the DAG never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoomin.config.records import ParamError
from zoomin.errors import ConfigError
from zoomin.models.params import (
    ATSParams,
    BagNetParams,
    CLAMParams,
    IPSParams,
    MILParams,
    ModelParams,
    MRMILParams,
    PatchDropParams,
    RACNNParams,
    StreamingCNNParams,
    TopKParams,
    ViewCNNParams,
    ZoomInKParams,
    ZoomInParams,
)

if TYPE_CHECKING:
    from torch import nn

ATTENTION_KINDS = ("two-stage", "one-stage", "none")


@dataclass(frozen=True)
class ModelType:
    """One model type: see the module docstring."""

    name: str
    params: type[ModelParams]
    builder: str  # "module:callable", called as callable(num_classes, params)
    contrastive: bool = False  # has the in-sample contrastive branch (docs/method.md §9.3)
    tile_pretraining: bool = False  # its a, b, f pre-train as tile classifiers from masks (zoomin.training.pretrain)
    attention: str = "none"  # what ModelOutput.attention holds: see ATTENTION_KINDS
    label: str = ""  # what it is, for error messages and docs

    def make_params(self, values: dict[str, Any] | None = None) -> ModelParams:
        return self.params.from_mapping(values)

    def build(self, num_classes: int, params: ModelParams) -> nn.Module:
        import torch  # here, not at the top: planning the DAG never imports torch

        module, _, name = self.builder.partition(":")
        model = getattr(importlib.import_module(module), name)(num_classes, params)
        # Every model's convolution weights channels-last, so its convolutions run in that layout:
        # oneDNN's on the CPU are 20-40 % faster forward and backward for the feature nets and ~3x
        # for the 8-channel attention nets (docs/measurements.md §7). The same computation, rounded
        # in another order.
        return model.to(memory_format=torch.channels_last)


MODEL_TYPES: dict[str, ModelType] = {
    record.name: record
    for record in (
        ModelType(
            "zoomin", ZoomInParams, "zoomin.models.zoomin_net:ZoomInNet",
            contrastive=True, tile_pretraining=True, attention="two-stage", label="Zoom-In network",
        ),
        ModelType(
            "zoomin_k", ZoomInKParams, "zoomin.models.zoomin_k:ZoomInKNet",
            contrastive=True, attention="two-stage", label="K-stage Zoom-In network",
        ),
        ModelType("ats", ATSParams, "zoomin.models.ats:ATSNet", attention="one-stage", label="attention sampling"),
        ModelType("cnn", ViewCNNParams, "zoomin.models.cnn:small_resnet", label="8-layer ResNet"),
        ModelType("efficientnet_b0", ViewCNNParams, "zoomin.models.cnn:efficientnet", label="EfficientNet-B0"),
        ModelType(
            "patchdrop", PatchDropParams, "zoomin.models.patchdrop:PatchDropNet",
            attention="one-stage", label="PatchDrop",
        ),
        ModelType("racnn", RACNNParams, "zoomin.models.racnn:RACNN", attention="two-stage", label="RA-CNN"),
        ModelType("bagnet", BagNetParams, "zoomin.models.bagnet:BagNet", attention="one-stage", label="BagNet"),
        ModelType(
            "topk", TopKParams, "zoomin.models.topk:TopKNet", attention="one-stage",
            label="differentiable top-k patch selection",
        ),
        ModelType("mil", MILParams, "zoomin.models.mil:MILNet", attention="one-stage", label="top-instance MIL"),
        ModelType("clam_sb", CLAMParams, "zoomin.models.clam:CLAMNet", attention="one-stage", label="CLAM-SB"),
        ModelType(
            "ips", IPSParams, "zoomin.models.ips:IPSNet", attention="one-stage", label="iterative patch selection"
        ),
        ModelType(
            "mrmil", MRMILParams, "zoomin.models.mrmil:MRMILNet", attention="one-stage", label="multi-resolution MIL"
        ),
        ModelType(
            "streaming_cnn", StreamingCNNParams, "zoomin.models.streaming_cnn:StreamingCNN", label="Streaming CNN"
        ),
    )
}


def model_type(name: str) -> ModelType:
    """The record of ``name``; a ConfigError lists the known types otherwise."""
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise ConfigError("model_type", f"unknown model type {name!r} (known: {', '.join(MODEL_TYPES)})") from None


def build_model(name: str, num_classes: int, **params: Any) -> nn.Module:
    """A fresh model of type ``name`` with ``num_classes`` outputs; ``params`` override defaults.

    Bad values raise :class:`zoomin.errors.ConfigError` naming the parameter.
    """
    record = model_type(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError("num_classes", f"must be a positive integer, got {num_classes!r}")
    try:
        values = record.make_params(params)
    except ParamError as error:
        raise ConfigError(error.field, error.problem) from None
    return record.build(num_classes, values)
