"""Cost of inference per image (batch 1): MACs (FLOPs), peak memory and time.

* :mod:`zoomin.measure.flops`     -- FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (2 per MAC)
* :mod:`zoomin.measure.memory`    -- peak tensor memory (CUDA allocator stats; a dispatch-mode
  allocation tracker on CPU) and the largest single allocation
* :mod:`zoomin.measure.timing`    -- median wall-clock time after warm-up
* :mod:`zoomin.measure.cost` -- :func:`measure_inference`: one image
* :mod:`zoomin.measure.across_images` -- :func:`measure_across_images`: a few test images, what
  the evaluation step calls (peak memory over them, time and MACs of the largest)
"""

from zoomin.measure.across_images import cost_image_indices, measure_across_images
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
    "cost_image_indices",
    "count_flops",
    "measure_across_images",
    "measure_inference",
    "measure_peak_memory",
    "module_bytes",
    "resident_tensor_bytes",
    "tensor_bytes",
    "time_call",
]
