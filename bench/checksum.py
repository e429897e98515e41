"""
Checksum benchmark: microseconds to XOR-fold one read of the instrument.

Times :func:`instrumentd.packet.xor_checksum` (the C accelerator where it
was built), its pure-Python fold, and the whole-buffer fold
it replaced (kept here as the reference) and, where numpy happens to be
installed, numpy's ``bitwise_xor.reduce`` over 64-bit words, with what
importing numpy costs the process.  The product does not use numpy: one
port-agent process per instrument would pay its import time and memory.

Run by hand (it is not a test): ``python bench/checksum.py``.  Prints
min/median/max over repeats, which the other users of a shared machine make
noisy; nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import time
import timeit
from collections.abc import Callable

from instrumentd import packet
from instrumentd.packet import MAX_PAYLOAD_SIZE, xor_checksum, xor_checksum_python


def whole_fold(data: bytes) -> int:
    """
    The first implementation: the whole buffer as one integer, halved until
    one byte is left.
    """
    n = len(data)
    if n == 0:
        return 0
    value = int.from_bytes(data, "big")
    while n > 1:
        half = n // 2
        bits = 8 * half
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
        n -= half
    return value


def numpy_fold() -> tuple[Callable[[bytes], int], float, float] | None:
    """
    numpy's reduction, with its import time (ms) and peak-RSS growth (MiB);
    ``None`` if numpy is not installed.
    """
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        np = importlib.import_module("numpy")
    except ImportError:
        return None
    import_ms = (time.perf_counter() - start) * 1e3
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024

    def fold(data: bytes) -> int:
        head = len(data) - len(data) % 8
        word = int(np.bitwise_xor.reduce(np.frombuffer(data, np.uint64, head // 8)))
        for byte in data[head:]:
            word ^= byte
        word ^= word >> 32
        word ^= word >> 16
        word ^= word >> 8
        return word & 0xFF

    return fold, import_ms, grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=200, help="calls per repeat")
    args = parser.parse_args()
    candidates: list[tuple[str, Callable[[bytes], int]]] = [
        (
            "xor_checksum (product, C)"
            if packet._xor_bytes is not None
            else "xor_checksum (product, no C)",
            xor_checksum,
        ),
        ("pure-Python fold (8 KiB words)", xor_checksum_python),
        ("whole-buffer fold (before)", whole_fold),
    ]
    extra = numpy_fold()
    if extra is not None:
        candidates.append(("numpy bitwise_xor.reduce", extra[0]))
    sizes = (65536, MAX_PAYLOAD_SIZE, 4096, 64)
    buffers = {n: os.urandom(n) for n in sizes}
    for data in buffers.values():
        answers = {fn(data) for _, fn in candidates}
        assert len(answers) == 1, "the candidates disagree"
    print("\nXOR checksum, µs per call (min / median / max of repeats)")
    print(f"{'implementation':<28}" + "".join(f"{n:>22}" for n in sizes))
    for name, fn in candidates:
        cells = []
        for n in sizes:
            data = buffers[n]
            times = [
                t / args.number * 1e6
                for t in timeit.repeat(
                    lambda fn=fn, data=data: fn(data),
                    number=args.number,
                    repeat=args.repeats,
                )
            ]
            cells.append(
                f"{min(times):.1f} / {statistics.median(times):.1f} / {max(times):.1f}"
            )
        print(f"{name:<28}" + "".join(f"{c:>22}" for c in cells))
    if extra is not None:
        print(f"\nimporting numpy: {extra[1]:.0f} ms, peak RSS +{extra[2]:.1f} MiB")
    else:
        print("\n(numpy not installed: not compared)")


if __name__ == "__main__":
    main()
