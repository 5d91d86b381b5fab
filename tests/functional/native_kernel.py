"""Test helper: the compiled kernels (conv, pool) must be there, unless they were switched off on purpose."""

from __future__ import annotations

import os

import pytest

from cnnexp.functional import native_kernels


def require_native_kernels() -> None:
    """Skip when `CNNEXP_DIRECT_CONV=0` is set; fail when the kernels should build and do not."""
    if os.environ.get(native_kernels.SWITCH, "1") == "0":
        pytest.skip(f"{native_kernels.SWITCH}=0")
    if native_kernels.library() is None:
        pytest.fail("the compiled kernels did not build (see the RuntimeWarning); is g++ installed?")
