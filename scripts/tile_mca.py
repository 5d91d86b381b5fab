"""Static throughput of each register tile of the direct conv kernel on CPUs you don't have (llvm-mca).

Compiles `cnnexp/functional/native/grid_conv.cpp` for one `-march` (default: sapphirerapids, an Intel Xeon with
AVX-512), cuts out each forward tile's inner loop (the `conv_tile<R, V, KW>` instructions from its first to its
last FMA: one input channel of one group of taps) and runs `llvm-mca -mcpu=...` on it. Prints, per tile and CPU
model, the loop's FMAs, the vector loads and stores on the stack (accumulators that did not fit the 32 (AVX-512)
or 16 (AVX2) vector registers), the estimated cycles per iteration and FMAs per cycle (2.0 is the peak of two FMA
ports). A steady-state estimate with every load hitting L1: it shows register pressure and port limits, not cache
misses; `scripts/bench_conv.py` measures.

    python scripts/tile_mca.py                                   # -march=sapphirerapids, mcpu sapphirerapids
    python scripts/tile_mca.py --march icelake-server --mcpu icelake-server,skylake-avx512
    python scripts/tile_mca.py --march znver3 --mcpu znver3      # AVX2 (8-float vectors)

Needs g++ (or $CXX) and llvm-mca (Debian: `apt-get install llvm`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "cnnexp" / "functional" / "native" / "grid_conv.cpp"


def tile_table() -> list[tuple[int, int, int]]:
    """The forward tile variants `(R, V, KW)`, read from the source's one table (CONV_TILES)."""
    text = SOURCE.read_text()
    table = re.search(r"#define CONV_TILES\(X\)((?:[^\n]*\\\n)*[^\n]*)", text).group(1)
    return [tuple(map(int, t)) for t in re.findall(r"X\((\d+),\s*(\d+),\s*(\d+)\)", table)]


def disassemble(march: str, workdir: Path) -> str:
    """The demangled disassembly of the kernel library built with `-O3 -march=<march>`."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or "c++"
    lib = workdir / f"grid_conv_{march}.so"
    subprocess.run([cxx, "-O3", f"-march={march}", "-fopenmp", "-std=c++17", "-shared", "-fPIC", str(SOURCE),
                    "-o", str(lib)], check=True)
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], check=True, capture_output=True,
                          text=True).stdout
    return subprocess.run(["c++filt"], input=dump, check=True, capture_output=True, text=True).stdout


def inner_loop(disassembly: str, tile: tuple[int, int, int]) -> list[str]:
    """The instructions of `conv_tile<R, V, KW>` from its first to its last FMA, jumps left out."""
    r, v, kw = tile
    for function in re.split(r"\n(?=[0-9a-f]+ <)", disassembly):
        if function.split(">:", 1)[0].split("<", 1)[-1].startswith(f"void conv_tile<{r}, {v}, {kw}>("):
            lines = [line.split("\t", 1)[1].strip() for line in function.splitlines()[1:] if "\t" in line]
            fmas = [i for i, line in enumerate(lines) if line.startswith("vfmadd")]
            body = lines[fmas[0]: fmas[-1] + 1]
            return [re.sub(r"\s+(#|<).*", "", line) for line in body if not line.startswith("j")]
    raise LookupError(f"conv_tile<{r}, {v}, {kw}> is not in the disassembly (inlined everywhere?)")


def mca_cycles(loop: list[str], mcpu: str, llvm_mca: str, workdir: Path, iterations: int = 200) -> float:
    """llvm-mca's cycles per iteration of `loop` on `mcpu`."""
    path = workdir / "loop.s"
    path.write_text("\n".join(loop) + "\n")
    done = subprocess.run([llvm_mca, f"-mcpu={mcpu}", f"-iterations={iterations}", str(path)], capture_output=True,
                          text=True)
    found = re.search(r"Total Cycles:\s+(\d+)", done.stdout)
    if not found:
        raise RuntimeError(f"llvm-mca -mcpu={mcpu}: {done.stderr.strip()[:300]}")
    return int(found.group(1)) / iterations


def find_llvm_mca() -> str | None:
    names = ["llvm-mca"] + [f"llvm-mca-{v}" for v in range(20, 10, -1)]
    return next((path for path in map(shutil.which, names) if path), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--march", default="sapphirerapids", help="g++ -march target to compile the kernel for")
    parser.add_argument("--mcpu", default=None, help="comma list of llvm-mca CPU models (default: --march)")
    args = parser.parse_args(argv)
    llvm_mca = find_llvm_mca()
    if llvm_mca is None:
        raise SystemExit("error: llvm-mca not found. Fix: apt-get install llvm (or put llvm-mca on the PATH).")
    cpus = (args.mcpu or args.march).split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code = disassemble(args.march, work)
        print(f"grid_conv.cpp, g++ -O3 -march={args.march}; llvm-mca ({Path(llvm_mca).name}), estimated cycles and "
              f"FMAs per cycle of one inner-loop iteration")
        print(f"{'tile RxVxKW':>12} {'FMAs':>5} {'stack loads':>12} {'stack stores':>13}  "
              + "  ".join(f"{cpu + ' cycles, FMA/cycle':>34}" for cpu in cpus))
        for tile in tile_table():
            loop = inner_loop(code, tile)
            fmas = sum(line.startswith("vfmadd") for line in loop)
            stores = sum(bool(re.search(r",\s*-?(0x[0-9a-f]+)?\(%rsp\)$", line)) for line in loop)
            loads = sum("(%rsp)" in line for line in loop) - stores
            cells = []
            for cpu in cpus:
                cycles = mca_cycles(loop, cpu, llvm_mca, work)
                cells.append(f"{cycles:24.1f} {fmas / cycles:9.2f}")
            print(f"{'x'.join(map(str, tile)):>12} {fmas:5d} {loads:12d} {stores:13d}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
