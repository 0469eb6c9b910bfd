"""Peak tensor memory of one call, measured the same way on CPU and CUDA.

What is counted (both devices):

* ``forward_peak_bytes`` -- the peak of live tensor bytes during the call ON TOP of what was live
  before it. On CUDA this is ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()``
  around the call (after ``reset_peak_memory_stats``); it includes kernel workspaces (cuDNN, cuBLAS)
  that the caching allocator hands out. On CPU there is no allocator statistic, so
  :class:`AllocationTracker` (a ``TorchDispatchMode``) records every NEW untyped storage that an
  aten op returns, with its ``nbytes``, and a ``weakref.finalize`` on the storage that subtracts the
  bytes when the storage is released. Views and in-place results share a storage already known (or
  one of the op's inputs) and are not counted again. Scratch buffers private to a CPU kernel (e.g.
  im2col inside a convolution) are not tensors seen by the dispatcher and are not counted; memory
  outside torch (NumPy arrays, Pillow images, e.g. the pixels of an ``InMemoryImage``) is not counted.
* ``largest_allocation_bytes`` -- the largest single storage created during the call (tracker, both
  devices), so tests can assert that no full-resolution tensor was ever allocated.

Resident bytes that exist before the call -- the model's parameters and buffers, and tensors held
by the image object itself (``DeviceTensorImage`` keeps the full image on the device) -- are
measured separately by :func:`resident_tensor_bytes`; :mod:`zoomin.measure.cost` adds them to
give the reported peak. ``MB`` means 2**20 bytes throughout.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MB = 2**20

StorageKey = tuple[str, int, int]


def _tensors(tree: Any) -> Iterator[torch.Tensor]:
    leaves, _ = tree_flatten(tree)
    return (leaf for leaf in leaves if isinstance(leaf, torch.Tensor))


def _storage_key(storage: torch.UntypedStorage) -> StorageKey:
    device = storage.device
    return device.type, -1 if device.index is None else int(device.index), int(storage.data_ptr())


def _storage(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, nested or otherwise storage-less tensors
        return None


class AllocationTracker(TorchDispatchMode):
    """Track live tensor bytes allocated while the mode is active; keep the peak and the largest one.

    ``device_type`` restricts counting to storages on one kind of device (``"cpu"``, ``"cuda"``);
    ``None`` counts every device. ``largest_allocation_op`` names the aten op that made the largest
    allocation (for diagnostics). Statistics are frozen when the mode exits (storages released after
    that are no longer subtracted), so read them after the ``with`` block.
    """

    def __init__(self, device_type: str | None = None):
        super().__init__()
        self.device_type = device_type
        self.live_bytes = 0
        self.peak_bytes = 0
        self.largest_allocation_bytes = 0
        self.allocated_bytes = 0
        self.num_allocations = 0
        self.largest_allocation_op = ""
        self._finalizers: dict[StorageKey, weakref.finalize] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch API
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs: set[StorageKey] | None = None
        for tensor in _tensors(out):
            storage = _storage(tensor)
            if storage is None or storage.nbytes() == 0:
                continue
            if self.device_type is not None and storage.device.type != self.device_type:
                continue
            key = _storage_key(storage)
            if key in self._finalizers:
                continue  # a view or in-place result of a storage already counted
            if inputs is None:
                inputs = {
                    _storage_key(s)
                    for s in (_storage(t) for t in _tensors((args, kwargs)))
                    if s is not None
                }
            if key in inputs:
                continue  # aliases an input that existed before (view, in-place, ``out=``)
            self._register(storage, key, str(func))
        return out

    def _register(self, storage: torch.UntypedStorage, key: StorageKey, op: str) -> None:
        nbytes = int(storage.nbytes())
        self.live_bytes += nbytes
        self.allocated_bytes += nbytes
        self.num_allocations += 1
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        if nbytes > self.largest_allocation_bytes:
            self.largest_allocation_bytes = nbytes
            self.largest_allocation_op = op
        self._finalizers[key] = weakref.finalize(storage, self._release, key, nbytes)

    def _release(self, key: StorageKey, nbytes: int) -> None:
        self.live_bytes -= nbytes
        self._finalizers.pop(key, None)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for finalizer in self._finalizers.values():
            finalizer.detach()
        self._finalizers.clear()


@dataclass(frozen=True)
class MemoryReport:
    """Memory used by one call; see the module docstring for what each number counts."""

    forward_peak_bytes: int
    largest_allocation_bytes: int
    method: str  # "cuda-allocator" or "dispatch-tracker"

    @property
    def forward_peak_mb(self) -> float:
        return self.forward_peak_bytes / MB

    @property
    def largest_allocation_mb(self) -> float:
        return self.largest_allocation_bytes / MB


def measure_peak_memory(fn: Callable[[], Any], device: torch.device | str) -> MemoryReport:
    """Run ``fn()`` once and report its peak tensor memory above what was live before, on ``device``.

    The result of ``fn`` is dropped inside the measurement, so its tensors count while they live.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with AllocationTracker("cuda") as tracker:
            fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        return MemoryReport(int(peak), tracker.largest_allocation_bytes, "cuda-allocator")
    with AllocationTracker(device.type) as tracker:
        fn()
    return MemoryReport(tracker.peak_bytes, tracker.largest_allocation_bytes, "dispatch-tracker")


def tensor_bytes(tensors: Iterable[torch.Tensor], device: torch.device | str | None = None) -> int:
    """Bytes of the distinct storages behind ``tensors`` (on ``device``'s type if given)."""
    device_type = None if device is None else torch.device(device).type
    seen: dict[StorageKey, int] = {}
    for tensor in tensors:
        storage = _storage(tensor)
        if storage is None or (device_type is not None and storage.device.type != device_type):
            continue
        seen[_storage_key(storage)] = int(storage.nbytes())
    return sum(seen.values())


def module_bytes(module: torch.nn.Module, device: torch.device | str | None = None) -> int:
    """Bytes of a module's parameters and buffers (shared storages counted once)."""
    return tensor_bytes([*module.parameters(), *module.buffers()], device)


def resident_tensor_bytes(obj: object, device: torch.device | str | None = None) -> int:
    """Bytes of the torch tensors an object holds as attributes (one level of containers).

    Used for the image: a ``DeviceTensorImage`` holds the full image as a tensor (counted), an
    ``InMemoryImage`` holds NumPy arrays (0 bytes of torch memory).
    """
    if isinstance(obj, torch.Tensor):
        return tensor_bytes([obj], device)
    attributes = getattr(obj, "__dict__", {})
    values = list(attributes.values()) + [
        getattr(obj, slot) for slot in getattr(type(obj), "__slots__", ()) if hasattr(obj, slot)
    ]
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, dict):
            value = list(value.values())
        found.extend(_tensors(value))
    return tensor_bytes(found, device)
