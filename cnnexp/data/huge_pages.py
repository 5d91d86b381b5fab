"""Large in-memory image sets in transparent huge pages (Linux): a random batch then costs few address translations.

A training batch gathers N random images from an image tensor of tens or hundreds of MB. With 4 KiB pages each
image lies on pages of its own, whose translations the training step before has pushed out of the TLB, so the
gather pays a page-table walk per image (two nested walks in a virtual machine). In 2 MiB pages the whole set
needs a few hundred translations. Linux backs a private anonymous mapping with huge pages when the mapping asks
for them (`madvise(MADV_HUGEPAGE)`, transparent-huge-page mode `madvise` or `always`); `in_huge_pages` copies a
tensor into such a mapping. Elsewhere (THP off, not Linux, not a CPU tensor, a small tensor) it returns the
tensor as it is. The copy is ordinary memory to torch: indexing, DataLoader workers (forked or spawned) and
pickling treat it like any CPU tensor.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import torch

MIN_BYTES = 16 * 2**20  # smaller sets: the pages a batch touches stay within the TLB's reach anyway
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode (`always`, `madvise` or `never`); "" where there is none."""
    try:
        text = THP_ENABLED.read_text()
    except OSError:
        return ""
    return text[text.find("[") + 1:text.find("]")] if "[" in text else ""


def in_huge_pages(t: torch.Tensor, min_bytes: int | None = None) -> torch.Tensor:
    """`t` copied into a private anonymous mapping advised to use huge pages (contiguous, same shape and dtype),
    or `t` itself where that does not apply (see the module docstring; `min_bytes`: `MIN_BYTES` unless given).

    Shape:
        - t: any; the result has t's shape.
    """
    nbytes = t.numel() * t.element_size()
    smallest = MIN_BYTES if min_bytes is None else min_bytes
    if (t.device.type != "cpu" or nbytes < smallest or not hasattr(mmap, "MADV_HUGEPAGE")
            or thp_mode() not in ("always", "madvise")):
        return t
    # private: a shared mapping follows the shmem THP setting, usually off
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.madvise(mmap.MADV_HUGEPAGE)  # before the copy touches a page: faults then map 2 MiB at a time
    out = torch.frombuffer(buffer, dtype=t.dtype, count=t.numel()).view(t.shape)  # keeps `buffer` alive
    return out.copy_(t)
