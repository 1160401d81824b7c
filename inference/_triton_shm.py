"""System shared-memory regions for :class:`~inference.triton_backend.TritonBackend`.

One :class:`ShmRegion` holds every input and every fixed-shape output of one
request of up to ``capacity`` samples, each tensor at its own 64-byte aligned
offset. :class:`ShmPool` keeps regions per key (model, capacity, input shapes) and hands a
free one to each request, so concurrent requests never share a region and a
region is created (and registered with the server) once, then reused.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tritonclient.utils import shared_memory as shm

__all__ = ["ShmPool", "ShmRegion", "Slot", "capacity_for"]

_ALIGN_BYTES = 64


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one tensor lives in a region: per-sample dims, dtype, byte offset."""

    dims: tuple[int, ...]
    dtype: np.dtype
    offset: int

    def nbytes(self, batch: int) -> int:
        return batch * math.prod(self.dims) * self.dtype.itemsize


class ShmRegion:
    """One POSIX shared-memory segment with a slot per tensor (client-created)."""

    def __init__(
        self,
        name: str,
        capacity: int,
        inputs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        outputs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
    ) -> None:
        self.name = name
        self.key = "/" + name
        self.capacity = capacity
        self.registered = False
        offset = 0
        self.inputs: dict[str, Slot] = {}
        self.outputs: dict[str, Slot] = {}
        for table, tensors in ((self.inputs, inputs), (self.outputs, outputs)):
            for tensor, (dims, dtype) in tensors.items():
                slot = Slot(dims, np.dtype(dtype), offset)
                table[tensor] = slot
                offset += -(-slot.nbytes(capacity) // _ALIGN_BYTES) * _ALIGN_BYTES
        self.byte_size = max(offset, _ALIGN_BYTES)
        self._handle = shm.create_shared_memory_region(
            name, self.key, self.byte_size, create_only=True
        )

    def write(self, arrays: Mapping[str, np.ndarray]) -> None:
        for tensor, array in arrays.items():
            shm.set_shared_memory_region(
                self._handle, [np.ascontiguousarray(array)], self.inputs[tensor].offset
            )

    def read(self, tensor: str, batch: int) -> np.ndarray:
        """A copy of output ``tensor`` for ``batch`` samples."""
        slot = self.outputs[tensor]
        view = shm.get_contents_as_numpy(self._handle, slot.dtype, (batch, *slot.dims), slot.offset)
        copy = np.array(view, copy=True)
        del view  # release the exported buffer so the segment can be closed later
        return copy

    def destroy(self) -> None:
        """Unmap and unlink the segment (the server must have unregistered it first)."""
        shm.destroy_shared_memory_region(self._handle)


class ShmPool:
    """Free regions per ``(model, capacity)``; every region ever made, for close()."""

    def __init__(self) -> None:
        self._token = f"sw{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._free: dict[Hashable, list[ShmRegion]] = {}
        self.regions: list[ShmRegion] = []
        self.in_use = 0
        self._serial = itertools.count()

    def acquire(self, key: Hashable, make: Callable[[str], ShmRegion]) -> ShmRegion:
        """A free region for ``key``, or a new one from ``make(unique_name)``."""
        free = self._free.setdefault(key, [])
        if free:
            region = free.pop()
        else:
            label = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key[0]) if isinstance(key, tuple) else "r")
            region = make(f"{self._token}_{label[:40]}_{next(self._serial)}")
            self.regions.append(region)
        self.in_use += 1
        return region

    def release(self, key: Hashable, region: ShmRegion) -> None:
        self.in_use -= 1
        if region in self.regions:  # not drained by close() meanwhile
            self._free.setdefault(key, []).append(region)

    def invalidate(self) -> None:
        """The server may have restarted: register every region again before its next use."""
        for region in self.regions:
            region.registered = False

    def drain(self) -> Sequence[ShmRegion]:
        regions, self.regions = self.regions, []
        self._free.clear()
        return regions


def capacity_for(batch: int, max_batch_size: int) -> int:
    """Region capacity for a batch: the next power of two, at most ``max_batch_size``."""
    capacity = 1 << max(batch - 1, 0).bit_length()
    return min(capacity, max_batch_size) if max_batch_size > 0 else capacity
