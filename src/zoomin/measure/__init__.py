"""Cost of inference per image (batch 1): FLOPs, peak memory and time.

* :mod:`zoomin.measure.flops`     -- FLOPs with ``torch.utils.flop_counter.FlopCounterMode``
* :mod:`zoomin.measure.memory`    -- peak tensor memory (CUDA allocator stats; a dispatch-mode
  allocation tracker on CPU) and the largest single allocation
* :mod:`zoomin.measure.timing`    -- median wall-clock time after warm-up
* :mod:`zoomin.measure.cost` -- :func:`measure_inference`, what the evaluation step calls
"""

from zoomin.measure.cost import measure_inference
from zoomin.measure.flops import count_flops
from zoomin.measure.memory import (
    MB,
    AllocationTracker,
    MemoryReport,
    measure_peak_memory,
    module_bytes,
    resident_tensor_bytes,
    tensor_bytes,
)
from zoomin.measure.timing import TimingReport, time_call

__all__ = [
    "MB",
    "AllocationTracker",
    "MemoryReport",
    "TimingReport",
    "count_flops",
    "measure_inference",
    "measure_peak_memory",
    "module_bytes",
    "resident_tensor_bytes",
    "tensor_bytes",
    "time_call",
]
