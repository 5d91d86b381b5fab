"""Test helper: the compiled kernels (conv, pool) must be there, unless they were switched off on purpose."""

from __future__ import annotations

import pytest

from cnnexp.functional import kernels


def require_kernels() -> None:
    """Skip when `CNNEXP_NATIVE_KERNELS=0` (or its old name) is set; fail when the kernels should build and do not."""
    if kernels.switched_off():
        pytest.skip(f"{kernels.SWITCH}=0")
    if kernels.library() is None:
        pytest.fail("the compiled kernels did not build (see the RuntimeWarning); is g++ installed?")
