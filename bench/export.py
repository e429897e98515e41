"""
Export speed and memory: a month of 1 Hz SBE 37 records (about 2.6 million,
with QARTOD flags, as a station writes them) exported to CSV and to netCDF
by ``instrumentd-export``, each run in a child process so its peak RSS
(``VmHWM``) is its own.  Shorter ranges of the same archive show whether
memory grows with the time range (it should not: records are read and
written a chunk at a time).

::

    python bench/export.py [--days 30] [--ranges 1 30] [--keep DIR]

Prints one row per format and range: records, seconds, records per second,
CPU seconds and records per CPU second (steadier than wall time on a shared
machine), peak RSS, output size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from instrumentd.packet import NTP_UNIX_OFFSET

START = datetime(2026, 11, 1, tzinfo=UTC)


def write_archive(directory: str, days: int, rate: float = 1.0) -> int:
    """
    Write ``days`` of SBE 37 records at ``rate`` Hz in the station's layout,
    with a metadata file.

    :returns: the records written.
    """
    folder = os.path.join(directory, "CTD01", "ctdpf_sample")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(directory, "CTD01", "metadata.json"), "w") as f:
        json.dump(
            {
                "record": "instrumentd.instrument_metadata",
                "version": 1,
                "station": {
                    "name": "bench",
                    "position": {"latitude": 44.6, "longitude": -124.3},
                },
                "instrument": {
                    "name": "CTD01",
                    "model": "Sea-Bird SBE 37-SMP MicroCAT",
                },
                "driver": {"name": "seabird_sbe37smp", "version": "1.0"},
                "parameters": {"TCALDATE": "08-nov-05", "CCALDATE": "08-nov-05"},
                "streams": {},
            },
            f,
        )
    per_day = int(86400 * rate)
    step = 1 / rate
    units = (
        '"units":{"temperature":"degree_Celsius","conductivity":"S m-1",'
        '"pressure":"dbar"},"standard_names":{"temperature":"sea_water_temperature",'
        '"conductivity":"sea_water_electrical_conductivity",'
        '"pressure":"sea_water_pressure"}'
    )
    qc = (
        '"qc":{{"temperature":{{"gross_range":1,"spike":{s},"rate_of_change":1,'
        '"flat_line":1,"aggregate":1}},"conductivity":{{"gross_range":1,"spike":{s},'
        '"rate_of_change":1,"flat_line":1,"aggregate":1}},"pressure":{{"gross_range":1,'
        '"aggregate":1}}}}'
    )
    total = 0
    for day in range(days):
        midnight = START + timedelta(days=day)
        base = midnight.timestamp()
        path = os.path.join(folder, f"{midnight:%Y-%m-%d}.jsonl")
        prefix = f"{midnight:%Y-%m-%d}T"
        with open(path, "w", buffering=1 << 20) as f:
            lines = []
            for i in range(per_day):
                offset = i * step
                whole = int(offset)
                hh, rest = divmod(whole, 3600)
                mm, ss = divmod(rest, 60)
                micros = round((offset - whole) * 1e6)
                ntp = base + offset + NTP_UNIX_OFFSET
                n = total + i
                temperature = 10 + 2 * math.sin(n / 4000)
                lines.append(
                    '{"record":"instrumentd.sample","version":2,"instrument":"CTD01",'
                    '"stream":"ctdpf_sample",'
                    f'"time":"{prefix}{hh:02d}:{mm:02d}:{ss:02d}.{micros:06d}Z",'
                    f'"ntp_time":{ntp!r},"time_source":"port_timestamp",'
                    f'"port_timestamp":{ntp!r},"driver_timestamp":{ntp + 0.05!r},'
                    '"quality_flag":"ok",'
                    f'"values":{{"temperature":{temperature:.4f},'
                    f'"conductivity":{3.5 + temperature / 100:.5f},'
                    f'"pressure":{10 + (n % 97) / 1000:.3f}}},'
                    f"{units},{qc.format(s=1 if i else 2)}}}\n"
                )
                if len(lines) >= 10000:
                    f.writelines(lines)
                    lines = []
            f.writelines(lines)
        total += per_day
    return total


def _child(argv: list[str]) -> None:
    """
    Run one export and print its figures as JSON (in the child).
    """
    import io

    from instrumentd.export.cli import export

    started = time.perf_counter()
    cpu = time.process_time()
    out = io.StringIO()
    status = export(argv, out, io.StringIO())
    wall = time.perf_counter() - started
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    written = int(out.getvalue().split(": ", 1)[1].split()[0]) if status == 0 else 0
    print(
        json.dumps(
            {
                "records": written,
                "seconds": wall,
                "cpu": time.process_time() - cpu,
                "vmhwm_kib": hwm,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of 1 Hz data")
    parser.add_argument(
        "--ranges",
        type=int,
        nargs="+",
        default=[1, 30],
        help="export ranges in days (default: 1 30)",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="write the archive here and keep it (reused)"
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        _child(options.child)
        return
    work = options.keep or tempfile.mkdtemp(prefix="export-bench-")
    archive = os.path.join(work, "archive")
    try:
        if not os.path.isdir(archive):
            started = time.perf_counter()
            count = write_archive(archive, options.days)
            print(
                f"archive: {count:,} records, "
                f"{_size(archive) / 2**20:,.0f} MiB, written in "
                f"{time.perf_counter() - started:.0f} s"
            )
        print()
        print(
            "| format | range | records | seconds | records/s | CPU s "
            "| records/CPU s | peak RSS MiB | output MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for days in options.ranges:
            end = (START + timedelta(days=days)).strftime("%Y-%m-%d")
            for fmt, suffix in (("csv", "csv"), ("netcdf", "nc")):
                target = os.path.join(work, f"out.{suffix}")
                result = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        archive,
                        "--end",
                        end,
                        "--format",
                        fmt,
                        "--output",
                        target,
                        "--no-progress",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                rate = figures["records"] / figures["seconds"]
                print(
                    f"| {fmt} | {days} d | {figures['records']:,} | "
                    f"{figures['seconds']:.1f} | {rate:,.0f} | {figures['cpu']:.1f} | "
                    f"{figures['records'] / figures['cpu']:,.0f} | "
                    f"{figures['vmhwm_kib'] / 1024:.0f} | "
                    f"{os.path.getsize(target) / 2**20:,.0f} |",
                    flush=True,
                )
                os.remove(target)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


def _size(directory: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(directory)
        for name in names
    )


if __name__ == "__main__":
    main()
