"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are.

Each section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` and starts with the
machine, the command and the date, so a reader knows what the figures mean.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEvery figure below was measured by a script under `bench/`, side by side with a peer or a raw floor in the same run. Each section names its machine, command and date.\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, Python {platform.python_version()}"


def write_section(name: str, title: str, command: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"- machine: {machine()}\n- command: `{command}`\n- date: {stamp}\n\n{body.strip()}\n<!-- END {name} -->\n"
    )
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->\n?", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def adopt_legacy_section(name: str, heading: str, path: Path = BENCHMARKS_MD) -> bool:
    """Put BEGIN/END markers around a hand-written section that starts with ``heading`` (up to the next
    ``## `` heading or marked section), so that the next ``write_section(name, ...)`` replaces it instead of
    adding a second one. True when a section was adopted."""
    if not path.exists():
        return False
    text = path.read_text()
    if f"<!-- BEGIN {name} -->" in text:
        return False
    match = re.search(rf"^{re.escape(heading)}.*?(?=^## |^<!-- BEGIN |\Z)", text, re.S | re.M)
    if not match:
        return False
    block = match.group(0).rstrip("\n")
    path.write_text(text[:match.start()] + f"<!-- BEGIN {name} -->\n{block}\n<!-- END {name} -->\n\n"
                    + text[match.end():])
    return True
