"""retain_freed_memory: a freed large block comes back without page faults (glibc), counted in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnexp.cpu_memory import _glibc

# Allocates, touches and frees 64 MiB twice; prints the minor page faults of the second touch.
FAULTS = r"""
import ctypes, json, resource, sys
from cnnexp.cpu_memory import _glibc, retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else False
libc, size = _glibc(), 64 << 20
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def touch():
    p = libc.malloc(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ctypes.memset(p, 1, size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    libc.free(p)
    return faults
touch()
print(json.dumps({"applied": applied, "faults": touch()}))
"""


def second_touch_faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only (Linux)")
def test_retained_memory_is_reused_without_page_faults():
    system, retained = second_touch_faults("system"), second_touch_faults("retain")
    pages = (64 << 20) // 4096
    if system["faults"] < pages // 4:
        pytest.skip(f"this kernel maps the block with few faults anyway ({system['faults']}; huge pages?)")
    assert retained["applied"] is True
    assert retained["faults"] < pages // 20, (system, retained)
