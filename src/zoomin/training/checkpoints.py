"""Per-epoch training checkpoints: written atomically, loaded with ``weights_only=True``.

A checkpoint holds the model, optimiser and scheduler state dicts, the RNG states of the run's
generators and of torch's global RNG, the epoch, the history so far and the best weights, plus the
identity of the run (model type, run id, seed, model and training settings, a digest of its train
and validation images) so that a checkpoint of another run or architecture is refused with a clear
message instead of being loaded, and one of this run under an earlier configuration or dataset is
recognised (:func:`stale_reason`) and not resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoomin.atomic import atomic_path
from zoomin.errors import ConfigError, InputFileError

RESTART_KEYS = ("model_params", "training", "data")  # identity parts that a config or data change alters
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "shuffle_rng", "sample_rng", "torch_rng", "state")


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle_rng: torch.Generator,
    sample_rng: torch.Generator,
    state: dict[str, Any],
    identity: dict[str, Any],
) -> None:
    payload = {
        "identity": identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "shuffle_rng": shuffle_rng.get_state(),
        "sample_rng": sample_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "state": state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, read once (a clear error if it is not one of ours)."""
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or "identity" not in payload:
        raise InputFileError(path, "is not a zoomin training checkpoint; delete it to start over")
    return payload


def restore_checkpoint(
    payload: dict[str, Any],
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle_rng: torch.Generator,
    sample_rng: torch.Generator,
    expected: dict[str, Any],
) -> dict[str, Any]:
    """Restore everything from the checkpoint ``payload`` read from ``path`` in place and return the
    saved training state."""
    if payload["identity"] != expected:
        raise InputFileError(
            path,
            f"belongs to another run or configuration ({_differences(payload['identity'], expected)}); "
            "delete it to start over",
        )
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise InputFileError(path, f"is an incomplete checkpoint (no {', '.join(missing)}); delete it to start over")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise InputFileError(path, f"does not match the model architecture: {error}") from error
    try:
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        shuffle_rng.set_state(payload["shuffle_rng"])
        sample_rng.set_state(payload["sample_rng"])
        torch.set_rng_state(payload["torch_rng"])
        return payload["state"]
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise InputFileError(
            path, f"is an incomplete or corrupt checkpoint ({type(error).__name__}: {error}); delete it to start over"
        ) from error


def stale_reason(payload: dict[str, Any], expected: dict[str, Any], epochs: int) -> str | None:
    """Why the checkpoint ``payload``, left by this very run (same model type, run id and seed), was
    written under an earlier configuration or dataset, or went past ``epochs``: then it must not be
    resumed and training starts over. ``None`` when it may be resumed, and also when it is another
    run's (:func:`restore_checkpoint` then refuses it with a clear error)."""
    if not isinstance(payload.get("identity"), dict):
        return None
    saved = payload["identity"]
    if any(saved.get(key) != expected.get(key) for key in set(saved) | set(expected) if key not in RESTART_KEYS):
        return None
    if saved != expected:
        return _differences(saved, expected)
    state = payload.get("state")
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if isinstance(epoch, int) and epoch > epochs:
        return f"it is from epoch {epoch}, past training.epochs {epochs}"
    return None


def _differences(saved: Any, expected: Any, prefix: str = "") -> str:
    """``key: checkpoint X, now Y`` for each differing entry (one level into nested dicts)."""
    if not (isinstance(saved, dict) and isinstance(expected, dict)):
        return f"{prefix or 'identity'}: checkpoint {saved!r}, now {expected!r}"
    parts = []
    for key in sorted(set(saved) | set(expected), key=str):
        if saved.get(key) != expected.get(key):
            name = f"{prefix}.{key}" if prefix else str(key)
            if prefix or not (isinstance(saved.get(key), dict) and isinstance(expected.get(key), dict)):
                parts.append(f"{name}: checkpoint {saved.get(key)!r}, now {expected.get(key)!r}")
            else:
                parts.append(_differences(saved[key], expected[key], name))
    return "; ".join(parts)


def read_torch_file(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear error for non-checkpoint files."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise InputFileError(path, "does not exist") from error
    except Exception as error:  # pickle, zip and unpickler errors all mean the same to a user
        first_line = (str(error).strip().splitlines() or [""])[0]  # torch appends paragraphs of advice
        raise InputFileError(
            path, f"is not a readable PyTorch checkpoint ({type(error).__name__}: {first_line})"
        ) from error


def load_trained_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model from ``model.pt`` (state dict + metadata)."""
    from zoomin.models import build_model

    payload = read_torch_file(path)
    if isinstance(payload, dict) and "identity" in payload and "model" in payload:
        raise InputFileError(path, "is not a zoomin model file but a training checkpoint: use the run's model.pt")
    if not isinstance(payload, dict) or "state_dict" not in payload or "metadata" not in payload:
        raise InputFileError(path, "is not a zoomin model file (no state_dict/metadata)")
    meta = payload["metadata"]
    missing = [key for key in ("model_type", "model_params", "classes") if key not in meta]
    if missing:
        raise InputFileError(path, f"is not a zoomin model file (its metadata has no {', '.join(missing)})")
    try:
        model = build_model(meta["model_type"], len(meta["classes"]), **meta["model_params"])
    except ConfigError as error:
        raise InputFileError(path, f"cannot be rebuilt by this zoomin: {error}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise InputFileError(path, f"does not match the {meta['model_type']} architecture: {error}") from error
    return model.to(device).eval(), meta
