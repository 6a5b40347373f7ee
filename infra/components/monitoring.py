"""The monitoring components (``radlake stack up monitoring``): Prometheus and Alertmanager from Debian's packages,
and two radlake processes beside them, the consumer-lag exporter and the alert webhook receiver.

All four listen on 127.0.0.1 over HTTPS with certificates of the platform CA and require clients to show one of
the same CA. Prometheus's configuration (:mod:`infra.monitoring_config`) is generated from the settings and the
parts that are running each time ``stack up monitoring`` runs; a running Prometheus or Alertmanager whose
configuration changed reloads it (SIGHUP) and the stack waits until the reload succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import ssl
import time
from abc import abstractmethod
from pathlib import Path

import httpx
import hvac

from infra.component import Component, radlake_process
from infra.downloads import DebianTree, fetch_debian_packages
from infra.errors import StackError
from infra.monitoring_config import (
    ScrapeJob,
    TLSFiles,
    alertmanager_config,
    prometheus_config,
    render,
    rules,
    web_config,
)
from infra.process import pid_alive, wait_until
from platform_layer.endpoints import (
    alertmanager_url,
    monitoring_dir,
    prometheus_url,
    scrape_targets_dir,
    vault_addr,
)
from platform_layer.errors import VaultUnavailable
from platform_layer.metrics_endpoint import ANNOUNCED_JOBS
from platform_layer.principals import METRICS_POLICY, METRICS_TOKEN_ROLE
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.tls import CertificateError, ca_file, ensure_certificate, vault_ca
from platform_layer.transit import VAULT_ERRORS
from platform_layer.vault import METRICS_POLICY_TEXT, admin_client

log = logging.getLogger(__name__)

DEBIAN_PACKAGES = ["prometheus", "prometheus-alertmanager"]
NAMES = ("alert-receiver", "alertmanager", "lag-exporter", "prometheus")


def _debian(settings: Settings) -> DebianTree:
    return fetch_debian_packages(settings.cache_dir, "monitoring", DEBIAN_PACKAGES, DEBIAN_PACKAGES)


# Debian's Alertmanager reads its default notification templates from this fixed path, which exists only where the
# package is installed system-wide; radlake only unpacks it. A copy of the program has the path replaced by a
# relative one of the same length (Go keeps strings with their length, so the binary stays valid), which resolves
# under Alertmanager's working directory, where a link points at the unpacked templates.
_ALERTMANAGER_SHARE = b"/usr/share/prometheus/alertmanager"
_RELATIVE_SHARE = b"." + b"/" * (len(_ALERTMANAGER_SHARE) - len(b".share")) + b"share"


def _alertmanager_program(tree: DebianTree) -> Path:
    patched = tree.root / "radlake" / "prometheus-alertmanager"
    if not patched.exists():
        original = tree.program("prometheus-alertmanager").read_bytes()
        if _ALERTMANAGER_SHARE not in original:
            raise StackError(f"alertmanager: {_ALERTMANAGER_SHARE.decode()} is not in Debian's program any more; "
                             "its templates cannot be pointed at the unpacked package")
        patched.parent.mkdir(parents=True, exist_ok=True)
        partial = patched.with_suffix(".part")
        partial.write_bytes(original.replace(_ALERTMANAGER_SHARE, _RELATIVE_SHARE))
        partial.chmod(0o755)
        partial.rename(patched)
    return patched


def _tls(settings: Settings, stem: str) -> TLSFiles:
    directory = monitoring_dir(settings) / "tls"
    return TLSFiles(ca_file(settings), directory / f"{stem}.crt", directory / f"{stem}.key")


def _client(tls: TLSFiles) -> ssl.SSLContext | None:
    """A TLS context that verifies the platform CA and shows ``tls``'s certificate (None before it exists)."""
    if not (tls.ca_file.exists() and tls.cert_file.exists()):
        return None
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def _get(url: str, tls: TLSFiles, timeout_s: float = 5.0) -> httpx.Response | None:
    context = _client(tls)
    if context is None:
        return None
    try:
        return httpx.get(url, verify=context, timeout=timeout_s)
    except (httpx.HTTPError, OSError, ssl.SSLError):
        return None


def _issue(settings: Settings, stem: str, name: str) -> bool:
    try:
        return ensure_certificate(admin_client(settings), monitoring_dir(settings) / "tls", stem, name).issued
    except (VaultUnavailable, CertificateError) as err:
        raise StackError(f"{stem}: its certificate comes from Vault: {err}; start Vault first "
                         "(`radlake stack up vault monitoring`)") from err


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, text)
    return True


class _ReloadableServer(Component):
    """Prometheus or Alertmanager: a Go server from Debian's packages with a web config (TLS) and a config file
    that it reloads on SIGHUP."""

    version_metric = ""  # the prefix of its own metrics

    @property
    def home(self) -> Path:
        return monitoring_dir(self.settings) / self.name

    @property
    def tls(self) -> TLSFiles:
        return _tls(self.settings, self.name)

    @property
    def version(self) -> str:
        answer = _get(f"{self.address}/metrics", self.tls)
        text = answer.text if answer is not None and answer.status_code == 200 else ""
        found = re.search(rf'^{self.version_metric}_build_info{{[^}}]*\bversion="([^"]+)"', text, re.M)
        return found.group(1) if found else "debian"

    def install(self) -> None:
        _debian(self.settings)

    @abstractmethod
    def write_config(self) -> bool:
        """Write the configuration files; whether any changed."""

    def prepare(self) -> None:
        _issue(self.settings, self.name, f"{self.name}.radlake.local")
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.write_config()

    def responding(self) -> bool:
        return _get(f"{self.address}/-/healthy", self.tls) is not None

    def healthy(self) -> bool:
        answer = _get(f"{self.address}/-/ready", self.tls)
        return answer is not None and answer.status_code == 200

    def after_start(self) -> None:
        renewed = _issue(self.settings, self.name, f"{self.name}.radlake.local")
        if self.write_config() or renewed:
            self.reload()

    def renew_certificates(self) -> bool:
        """The web config names the files; the server reads them again on its reload."""
        if self.external or not _issue(self.settings, self.name, f"{self.name}.radlake.local"):
            return False
        self.reload()
        return True

    def _last_reload(self) -> tuple[float, float]:
        """(success timestamp, 1 when the last reload succeeded) from the server's own metrics."""
        answer = _get(f"{self.address}/metrics", self.tls)
        text = answer.text if answer is not None and answer.status_code == 200 else ""
        stamp = re.search(rf"^{self.version_metric}_config_last_reload_success_timestamp_seconds (\S+)$", text, re.M)
        ok = re.search(rf"^{self.version_metric}_config_last_reload_successful (\S+)$", text, re.M)
        return (float(stamp.group(1)) if stamp else 0.0), (float(ok.group(1)) if ok else 0.0)

    def reload(self) -> None:
        """SIGHUP, then wait until the server reports a successful reload since (or a failed one: an error)."""
        pid = self.pid()
        if pid is None:
            return
        was_ok = self._last_reload()[1] == 1
        before = int(time.time())  # the servers stamp a reload in whole seconds
        os.kill(pid, signal.SIGHUP)
        failed = []

        def reloaded() -> bool:
            stamp, ok = self._last_reload()
            if stamp >= before and ok == 1:
                return True
            if ok == 0 and was_ok:  # after an earlier failure, only a success tells this reload's outcome
                failed.append(True)
                return True
            return False

        wait_until(reloaded, timeout_s=30, what=f"{self.name} (reloading its configuration)", log_file=self.log_file)
        if failed:
            raise StackError(f"{self.name} refused its new configuration; see {self.log_file}")


class Prometheus(_ReloadableServer):
    name = "prometheus"
    version_metric = "prometheus"

    @property
    def address(self) -> str:
        return prometheus_url(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.prometheus_port]

    @property
    def vault_token_file(self) -> Path:
        return self.home / "vault-token"

    def command(self) -> tuple[list[str], dict[str, str]]:
        tree = _debian(self.settings)
        return [str(tree.program("prometheus")), f"--config.file={self.home / 'prometheus.yml'}",
                f"--web.config.file={self.home / 'web.yml'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--storage.tsdb.retention.time={self.settings.prometheus_retention}",
                f"--web.external-url={self.address}/", "--log.level=info"], tree.env()

    def jobs(self) -> list[ScrapeJob]:
        """Prometheus, Alertmanager, the lag exporter, OpenBao when it is the stack's and running, and the
        long-running parts (streams workers, inference workers, radiomics followers, the lake's queries) that
        announced themselves in the targets folder."""
        s = self.settings
        jobs = [ScrapeJob("prometheus", (f"127.0.0.1:{s.prometheus_port}",)),
                ScrapeJob("alertmanager", (f"127.0.0.1:{s.alertmanager_port}",)),
                ScrapeJob("lag-exporter", (f"127.0.0.1:{s.lag_exporter_port}",)),
                *(ScrapeJob(job, files=(str(scrape_targets_dir(s) / f"{job}-*.json"),)) for job in ANNOUNCED_JOBS)]
        if self._vault_token():
            host = vault_addr(s).split("://", 1)[1].rstrip("/")
            jobs.append(ScrapeJob("vault", (host,), metrics_path="/v1/sys/metrics",
                                  params={"format": ["prometheus"]}, credentials_file=self.vault_token_file))
        return jobs

    def _forget_gone_targets(self) -> None:
        """Remove the file_sd announcements of processes that are gone (a worker killed with -9 cannot remove its
        own; until then ScrapeTargetDown reports it)."""
        for announcement in scrape_targets_dir(self.settings).glob("*.json"):
            try:
                pids = {int(t["labels"]["__meta_radlake_pid"]) for t in json.loads(announcement.read_text())}
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not one of radlake's, or being written: left alone
            if not any(pid_alive(pid) for pid in pids):
                log.info("removing %s: its process is gone", announcement.name)
                announcement.unlink(missing_ok=True)

    def _vault_token(self) -> bool:
        """A token for OpenBao's metrics in :attr:`vault_token_file`, renewed, or made anew (policy
        ``radlake-metrics``, token role ``radlake-metrics``) when missing or no longer valid. False when the
        stack's Vault is not running, is external (its operators decide who reads its metrics), or was started
        without the telemetry stanza (its job is then left out)."""
        from infra.components.vault import Vault  # noqa: PLC0415 - only to ask whether it runs

        vault = Vault(self.settings)
        if vault.external or vault.pid() is None:
            return False
        if "telemetry" not in (vault.home / "server.hcl").read_text():
            log.warning("vault runs without telemetry (started by an older radlake): restart it for its metrics "
                        "(`radlake stack down vault && radlake stack up vault monitoring`)")
            return False
        verify = vault_ca(self.settings)
        if self.vault_token_file.exists():
            try:
                hvac.Client(url=vault_addr(self.settings), token=self.vault_token_file.read_text().strip(),
                            verify=verify).auth.token.renew_self()
                return True
            except VAULT_ERRORS:
                pass  # expired or revoked: a new one below
        try:
            admin = admin_client(self.settings)
            admin.sys.create_or_update_policy(METRICS_POLICY, METRICS_POLICY_TEXT)
            answer = admin.auth.token.create(role_name=METRICS_TOKEN_ROLE, policies=[METRICS_POLICY],
                                             display_name="radlake-prometheus")
        except (VaultUnavailable, *VAULT_ERRORS) as err:
            raise StackError(f"prometheus: cannot get a token for OpenBao's metrics: {err}") from err
        write_private(self.vault_token_file, answer["auth"]["client_token"] + "\n")
        return True

    def write_config(self) -> bool:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        scrape_targets_dir(s).mkdir(parents=True, exist_ok=True)
        self._forget_gone_targets()
        tls = self.tls
        changed = [
            _write_if_changed(self.home / "web.yml", render(web_config(tls.cert_file, tls.key_file, tls.ca_file))),
            _write_if_changed(self.home / "rules.yml", render(rules(s))),
            _write_if_changed(self.home / "prometheus.yml",
                              render(prometheus_config(s, self.jobs(), tls, self.home / "rules.yml"))),
        ]
        return any(changed)


class Alertmanager(_ReloadableServer):
    name = "alertmanager"
    version_metric = "alertmanager"

    @property
    def address(self) -> str:
        return alertmanager_url(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.alertmanager_port]

    def command(self) -> tuple[list[str], dict[str, str]]:
        tree = _debian(self.settings)
        share = self.home / "share"
        if not share.exists():
            share.symlink_to(tree.root / "usr" / "share" / "prometheus" / "alertmanager")
        return [str(_alertmanager_program(tree)), f"--config.file={self.home / 'alertmanager.yml'}",
                f"--web.config.file={self.home / 'web.yml'}",
                f"--web.listen-address=127.0.0.1:{self.settings.alertmanager_port}",
                f"--storage.path={self.home / 'data'}",
                "--cluster.listen-address=",  # one instance: no gossip port
                f"--web.external-url={self.address}/", "--log.level=info"], tree.env()

    def write_config(self) -> bool:
        tls = self.tls
        changed = [
            _write_if_changed(self.home / "web.yml", render(web_config(tls.cert_file, tls.key_file, tls.ca_file))),
            _write_if_changed(self.home / "alertmanager.yml", render(alertmanager_config(self.settings, tls))),
        ]
        return any(changed)


class _RadlakeProcess(Component):
    """A ``radlake monitoring ACTION`` process, serving HTTPS on ``port`` with its own certificate."""

    action = ""

    @property
    def home(self) -> Path:
        return monitoring_dir(self.settings) / self.name

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def tls(self) -> TLSFiles:
        return _tls(self.settings, self.name)

    @property
    def version(self) -> str:
        return "radlake"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return radlake_process(self.settings, "monitoring", self.action)


class LagExporter(_RadlakeProcess):
    name = "lag-exporter"
    action = "exporter"

    @property
    def port(self) -> int:
        return self.settings.lag_exporter_port

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}/metrics"

    def prepare(self) -> None:
        # The exporter's principal logs in with SCRAM: on a broker started before it existed, its credentials are
        # set now (the same upsert `stack up kafka` makes for every principal).
        from infra.components.kafka import Kafka  # noqa: PLC0415

        kafka = Kafka(self.settings)
        if not kafka.external:
            if kafka.pid() is None:
                raise StackError("lag-exporter: Kafka is not running; `radlake stack up kafka monitoring`")
            kafka.after_start()

    def responding(self) -> bool:
        answer = _get(self.address, self.tls, timeout_s=15)
        return answer is not None and answer.status_code == 200


class AlertReceiver(_RadlakeProcess):
    name = "alert-receiver"
    action = "receiver"

    @property
    def port(self) -> int:
        return self.settings.alert_receiver_port

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def alerts_file(self) -> Path:
        return monitoring_dir(self.settings) / "alerts.jsonl"

    def responding(self) -> bool:
        answer = _get(f"{self.address}-/ready", self.tls)
        return answer is not None and answer.status_code == 200
