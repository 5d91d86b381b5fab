"""scripts/tile_mca.py reads the kernel's inner loops off the compiler's output: every register tile's loop is fully
unrolled (R*V*KW multiply-adds) and, with an Intel tuning, moves no vector through the stack (the spills and the
split 256-bit copies that made the kernel slow on Intel Xeons and on AVX2 builds)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tile_mca.py"


def tile_mca():
    spec = importlib.util.spec_from_file_location("tile_mca", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("march", ["icelake-server", "x86-64-v3"])  # AVX-512 (32 registers), AVX2 (16)
def test_every_tile_loop_is_unrolled_and_stores_nothing_on_the_stack(tmp_path, march):
    if not (shutil.which("g++") and shutil.which("objdump") and shutil.which("c++filt")):
        pytest.skip("needs g++ and binutils")
    mca = tile_mca()
    code = mca.disassemble(march, tmp_path)
    tiles = mca.tile_table()
    assert len(tiles) >= 8
    for r, v, kw in tiles:
        loop = mca.inner_loop(code, (r, v, kw))
        assert sum(line.startswith("vfmadd") for line in loop) == r * v * kw, (march, r, v, kw)
        stores = [line for line in loop if re.search(r",\s*-?(0x[0-9a-f]+)?\(%rsp\)$", line)]
        fits_avx2 = r * v + kw * v + 1 < 16  # accumulators, weight vectors, a broadcast and one to spare
        if march == "icelake-server" or fits_avx2:
            assert not stores, (march, (r, v, kw), stores)
