"""in_huge_pages: a large image tensor moves into a mapping advised to use huge pages, unchanged in value; small
tensors and machines without transparent huge pages keep the tensor as it is; loaders and pickling still work."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from cnnexp.data import huge_pages
from cnnexp.data.huge_pages import in_huge_pages
from cnnexp.data.tensor_dataset import ImageTensorDataset, collate_images

needs_thp = pytest.mark.skipif(huge_pages.thp_mode() not in ("always", "madvise"),
                               reason="no transparent huge pages on this machine")


def images(n: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)


def smaps_entry(t: torch.Tensor) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping that holds `t`'s first byte."""
    address, entry = t.data_ptr(), None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:  # "start-end perms offset dev inode [path]"
                start, end = (int(a, 16) for a in head.split("-"))
                entry = {} if start <= address < end else None
            elif entry is not None:
                key, _, value = line.partition(":")
                entry[key] = value.strip()
                if key == "VmFlags":
                    return entry
    raise AssertionError("no mapping holds the tensor")


@needs_thp
def test_a_large_tensor_is_copied_into_a_huge_page_mapping():
    x = images(96)
    y = in_huge_pages(x, min_bytes=1)
    assert torch.equal(y, x) and y.dtype == x.dtype and y.data_ptr() != x.data_ptr()
    assert "hg" in smaps_entry(y)["VmFlags"].split()  # the mapping carries MADV_HUGEPAGE
    assert "hg" not in smaps_entry(x)["VmFlags"].split()


def test_small_tensors_and_machines_without_thp_keep_the_tensor(monkeypatch):
    x = images()
    assert in_huge_pages(x) is x  # below MIN_BYTES
    monkeypatch.setattr(huge_pages, "thp_mode", lambda: "never")
    assert in_huge_pages(x, min_bytes=1) is x


@needs_thp
def test_the_dataset_serves_the_same_batches_through_workers_and_pickling(monkeypatch):
    monkeypatch.setattr(huge_pages, "MIN_BYTES", 1)
    x, y = images(), torch.arange(64) % 5
    dataset = ImageTensorDataset(x, y)
    assert "hg" in smaps_entry(dataset.images)["VmFlags"].split()
    batches = list(DataLoader(dataset, batch_size=16, num_workers=1, collate_fn=collate_images))
    assert torch.equal(torch.cat([b[0] for b in batches]), x.float())
    assert torch.equal(pickle.loads(pickle.dumps(dataset)).images, x)
