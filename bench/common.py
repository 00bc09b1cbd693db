"""What the lab benchmarks share: where picl is, how to run it, the machine they ran on."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PICL = [sys.executable, "-c", "from picl.cli import main; main()"]


def machine() -> dict[str, object]:
    """The machine a benchmark ran on: cores, CPU model, memory, system, kernel, Python, date."""
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(memory.split()[1]) / 1024 / 1024, 1),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def machine_text() -> str:
    """machine() in one line, for a report."""
    m = machine()
    return (f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']:.0f} GiB, {m['os']}, "
            f"{m['kernel']}, Python {m['python']}, {m['date']}")
