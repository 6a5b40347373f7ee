"""Fetch artifacts from Maven Central (and a few programs from Debian's packages) into the cache, verified.

Two ways: single files by coordinates (verified against the registry's .sha1), and whole dependency
trees resolved by Maven itself (``mvn dependency:copy-dependencies`` with strict checksums) from a
small POM kept in ``infra/maven/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.errors import DownloadFailed
from platform_layer.java import find_java_home

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
POM_DIR = Path(__file__).parent / "maven"


def maven_url(group: str, artifact: str, version: str, ext: str = "jar", classifier: str = "") -> str:
    suffix = f"-{classifier}" if classifier else ""
    return f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}{suffix}.{ext}"


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes SHA-1 checksums
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def maven_cache_path(
    cache_dir: Path, group: str, artifact: str, version: str, ext: str = "jar", classifier: str = ""
) -> Path:
    """Where :func:`fetch_maven_file` keeps an artifact (whether or not it is there yet)."""
    return cache_dir / "maven" / maven_url(group, artifact, version, ext, classifier).removeprefix(MAVEN_CENTRAL + "/")


def fetch_maven_file(
    cache_dir: Path, group: str, artifact: str, version: str, ext: str = "jar", classifier: str = ""
) -> Path:
    """Download one artifact into cache_dir/maven/... once; verify its SHA-1; return the local path."""
    url = maven_url(group, artifact, version, ext, classifier)
    target = maven_cache_path(cache_dir, group, artifact, version, ext, classifier)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0, read=300.0), follow_redirects=True) as client:
            expected = client.get(url + ".sha1").raise_for_status().text.split()[0].strip()
            log.info("downloading %s", url)
            with client.stream("GET", url) as resp, open(partial, "wb") as out:
                resp.raise_for_status()
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as err:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"download of {url} failed ({err}); check access to Maven Central") from err
    actual = _sha1(partial)
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"checksum mismatch for {url}: expected sha1 {expected}, got {actual}")
    partial.rename(target)
    return target


MAVEN_VERSION = "3.9.11"


def maven_binary(cache_dir: Path) -> str:
    """``mvn`` from PATH, or Apache Maven itself fetched from Maven Central into the cache."""
    found = shutil.which("mvn")
    if found:
        return found
    home = cache_dir / f"apache-maven-{MAVEN_VERSION}"
    if not (home / "bin" / "mvn").exists():
        archive = fetch_maven_file(cache_dir, "org.apache.maven", "apache-maven", MAVEN_VERSION, "tar.gz", "bin")
        partial = cache_dir / f".apache-maven-{MAVEN_VERSION}.part"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="tar")
        (partial / f"apache-maven-{MAVEN_VERSION}").rename(home)
        shutil.rmtree(partial, ignore_errors=True)
    return str(home / "bin" / "mvn")


def resolve_with_maven(cache_dir: Path, pom_name: str, properties: dict[str, str], out_dir: Path) -> Path:
    """Resolve the dependency tree of infra/maven/<pom_name> into out_dir (once) with checksums enforced."""
    marker = out_dir / ".resolved"
    if marker.exists():
        return out_dir
    mvn = maven_binary(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn, "-B", "-q", "--strict-checksums",
        "-f", str(POM_DIR / pom_name),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
        *[f"-D{k}={v}" for k, v in properties.items()],
    ]
    log.info("resolving %s from Maven Central", pom_name)
    env = {**os.environ, "JAVA_HOME": str(find_java_home(17))}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)  # noqa: S603
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise DownloadFailed(f"Maven could not resolve {pom_name} ({properties}):\n{tail}")
    marker.write_text("ok\n")
    return out_dir


def package_with_maven(
    cache_dir: Path, pom_name: str, properties: dict[str, str], java_home: Path | None = None
) -> None:
    """Run ``mvn package`` on infra/maven/<pom_name> (copy/unpack executions, NAR builds) with checksums enforced.

    The POM decides where its outputs go (pass the target folders in ``properties``); callers keep their
    own "done" marker. ``java_home`` is the JDK Maven runs on (plugins built for Java 21 need it).
    """
    mvn = maven_binary(cache_dir)
    argv = [
        mvn, "-B", "-q", "--strict-checksums",
        "-f", str(POM_DIR / pom_name),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        *[f"-D{k}={v}" for k, v in properties.items()],
        "package",
    ]
    env = dict(os.environ)
    if java_home is not None:
        env["JAVA_HOME"] = str(java_home)
    log.info("building %s from Maven Central artifacts", pom_name)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)  # noqa: S603
    if proc.returncode != 0:
        tail = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" not in line)
        tail = "\n".join(tail.splitlines()[-15:])
        raise DownloadFailed(f"Maven could not build {pom_name} ({properties}):\n{tail}")


@dataclass(frozen=True)
class DebianTree:
    """Debian packages unpacked (not installed) into one folder: their programs run from there."""

    root: Path

    def program(self, name: str) -> Path:
        for folder in ("usr/bin", "usr/sbin", "bin", "sbin"):
            candidate = self.root / folder / name
            if candidate.exists():
                return candidate
        raise DownloadFailed(f"{name} is not in the unpacked Debian packages under {self.root}")

    def env(self) -> dict[str, str]:
        """The environment a program from this tree runs with: its own shared libraries first."""
        libraries = [str(self.root / sub) for sub in ("usr/lib/x86_64-linux-gnu", "usr/lib", "lib/x86_64-linux-gnu")]
        inherited = os.environ.get("LD_LIBRARY_PATH", "")
        return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*libraries, *filter(None, [inherited])])}


def fetch_debian_packages(cache_dir: Path, name: str, packages: Sequence[str], programs: Sequence[str]) -> DebianTree:
    """Download Debian packages with ``apt-get download`` (apt verifies them against the signed archive index)
    and unpack them with ``dpkg-deb -x`` under cache_dir/debian/<name> — no root, nothing installed system-wide.

    ``packages`` lists the packages and those of their dependencies the machine lacks (shared libraries of the
    programs); every program in ``programs`` is then checked with ``ldd``, so a library still missing is named
    instead of failing at start.
    """
    tree = DebianTree(cache_dir / "debian" / name)
    marker = tree.root / ".unpacked"
    wanted = "\n".join(packages) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return tree
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DownloadFailed(f"{name} comes from Debian's packages ({', '.join(packages)}): apt-get and dpkg-deb are needed")
    debs = cache_dir / "debian" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log.info("downloading Debian packages %s", " ".join(packages))
    proc = subprocess.run(["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True)  # noqa: S603,S607
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-5:])
        raise DownloadFailed(f"apt-get download {' '.join(packages)} failed:\n{tail}")
    partial = tree.root.with_name(tree.root.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for package in packages:
        # The newest file for that package name: apt-get download names them <name>_<version>_<arch>.deb.
        candidates = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise DownloadFailed(f"apt-get download left no .deb for {package}")
        subprocess.run(["dpkg-deb", "-x", str(candidates[-1]), str(partial)], check=True)  # noqa: S603,S607
    shutil.rmtree(tree.root, ignore_errors=True)
    partial.rename(tree.root)
    for program in programs:
        linked = subprocess.run(  # noqa: S603,S607
            ["ldd", str(tree.program(program))], capture_output=True, text=True, env=tree.env()
        )
        missing = sorted({line.split()[0] for line in linked.stdout.splitlines() if "not found" in line})
        if missing:
            raise DownloadFailed(f"{program} from Debian needs {', '.join(missing)}: add its package to {name}'s list")
    marker.write_text(wanted)
    return tree
