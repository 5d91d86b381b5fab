"""Test helper: the compiled direct-conv kernel must be there, unless it was switched off on purpose."""

from __future__ import annotations

import os

import pytest

from cnnexp.functional import direct_conv


def require_direct_kernel() -> None:
    """Skip when `CNNEXP_DIRECT_CONV=0` is set; fail when the kernel should build and does not."""
    if os.environ.get(direct_conv.SWITCH, "1") == "0":
        pytest.skip(f"{direct_conv.SWITCH}=0")
    if direct_conv.library() is None:
        pytest.fail("the compiled direct conv did not build (see the RuntimeWarning); is g++ installed?")
