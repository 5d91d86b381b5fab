"""Test helper: the compiled kernels (conv, pool) must be there, unless they were switched off on purpose."""

from __future__ import annotations

import pytest

from cnnexp.functional import native_kernels


def require_native_kernels() -> None:
    """Skip when `CNNEXP_NATIVE_KERNELS=0` (or its old name) is set; fail when the kernels should build and do not."""
    if native_kernels.switched_off():
        pytest.skip(f"{native_kernels.SWITCH}=0")
    if native_kernels.library() is None:
        pytest.fail("the compiled kernels did not build (see the RuntimeWarning); is g++ installed?")
