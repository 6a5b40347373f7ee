"""What the notebooks component and its hub share, without importing JupyterHub (whose import is slow and
noisy for every `radlake stack` command): the proxy's install, who is admitted, the OS account of a person, and
the interpreter the notebook users run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from platform_layer.realm_roles import PLATFORM_ADMIN, ProjectAccess, RoleNameError, parse_role
from platform_layer.settings import Settings

OS_USER_PREFIX = "rlnb-"
PROXY_VERSION = "5.3.0"  # configurable-http-proxy, from npm
_UNSAFE = re.compile(r"[^a-z0-9-]")


def proxy_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"configurable-http-proxy-{PROXY_VERSION}"


def proxy_command(settings: Settings) -> Path:
    return proxy_dir(settings) / "node_modules" / ".bin" / "configurable-http-proxy"


def _reachable_by_others(path: Path) -> bool:
    """Whether a user of no special group can reach ``path`` (every directory above it searchable by others)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.resolve().parents)


def kernel_python(settings: Settings) -> Path:
    """The interpreter of the notebook servers and their kernels: the platform's own when notebook users can run
    it, else the runtime :func:`ensure_runtime` builds."""
    if _reachable_by_others(Path(sys.executable)) and _reachable_by_others(Path(sys.base_prefix) / "lib"):
        return Path(sys.executable)
    return settings.notebooks_home_dir / ".runtime" / "bin" / "python"


def _hidden_from_others(root: Path) -> list[Path]:
    hidden = []
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and not (mode & stat.S_IROTH and (not stat.S_ISDIR(mode) or mode & stat.S_IXOTH)):
                hidden.append(path)
    return hidden


def unavailable(settings: Settings) -> str | None:
    """Why notebooks cannot run on this host (None: they can): kernels run as per-person OS users, which takes
    root and ``useradd``, and those users must be able to read the platform's installation."""
    if os.geteuid() != 0:
        return "the hub must run as root: each person's kernel runs as an OS user of their own"
    if shutil.which("useradd") is None:
        return "useradd is missing"
    site_packages = Path(sysconfig.get_paths()["purelib"])
    if not _reachable_by_others(site_packages / "jupyterhub"):
        return f"other users cannot reach {site_packages} (a folder above it is closed to them)"
    hidden = _hidden_from_others(site_packages)
    if hidden:
        return f"{len(hidden)} files of {site_packages} are readable by root only, e.g. {hidden[0]}"
    return None


def ensure_runtime(settings: Settings) -> Path:
    """An interpreter notebook users can run, over the platform's packages. A Python installed under root's home
    (pyenv) is out of their reach: then a venv of the same Python version from a system interpreter, whose
    ``.pth`` adds the platform's site-packages (read-only to them)."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    hidden = _hidden_from_others(site_packages)
    if hidden:
        raise RuntimeError(f"{len(hidden)} files of the platform's packages are readable by root only (installed "
                           f"under umask 077), e.g. {hidden[0]}: `chmod -R o+rX {site_packages}`")
    python = kernel_python(settings)
    if python == Path(sys.executable) or python.exists():
        return python
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(d) / version for d in ("/usr/bin", "/usr/local/bin", "/bin")]
    system = next((c for c in candidates if c.exists() and _reachable_by_others(c)), None)
    if system is None or not _reachable_by_others(site_packages / "jupyterhub"):
        raise RuntimeError(f"notebook users can run neither {sys.executable} nor a system {version}, or cannot read "
                           f"{site_packages}: install {version} outside root's home")
    runtime = python.parent.parent
    staging = runtime.with_name(".runtime.partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(staging)],  # noqa: S603
                   check=True, capture_output=True, text=True)
    (staging / "lib" / version / "site-packages" / "radlake-platform.pth").write_text(
        f"import site; site.addsitedir({str(site_packages)!r})\n")
    for path in [staging, *staging.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    staging.rename(runtime)
    return python


def admitted(roles: list[str]) -> bool:
    """Whether a person holding realm ``roles`` may use the notebooks: ``platform-admin``, or a project's reader or
    steward (what they may read is still decided per dataset by the gateway)."""
    for text in roles:
        try:
            role = parse_role(text)
        except RoleNameError:
            continue
        if role.kind == PLATFORM_ADMIN or role.access in (ProjectAccess.READER, ProjectAccess.STEWARD):
            return True
    return False


def os_user(hub_name: str) -> str:
    """The OS account of a hub user: ``rlnb-`` and the name, made safe for ``useradd`` (a hash keeps two names
    that differ only in unsafe characters apart; 32 characters at most)."""
    safe = _UNSAFE.sub("-", hub_name.lower())
    if safe != hub_name or len(OS_USER_PREFIX + safe) > 32:
        safe = f"{safe[:17]}-{hashlib.sha256(hub_name.encode()).hexdigest()[:8]}"
    return OS_USER_PREFIX + safe
