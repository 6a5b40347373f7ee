"""Apache NiFi 2.x, assembled from Maven Central artifacts, HTTPS only on loopback; nobody is anonymous.

``install`` lays out a NiFi home in the cache (``<cache>/nifi-<version>``) with Maven: the framework
jars and the NARs Maven Central serves (``infra/maven/nifi.pom.xml``), the Python processor framework,
and the NARs it does not serve rebuilt from their published jars (``infra/maven/<nar>.pom.xml``).
NiFi 2.x's binary assembly, ``nifi-bootstrap`` and the ``nifi-resources`` conf zip are not served, so
``prepare`` writes ``conf/`` under the state dir and the process is ``org.apache.nifi.NiFi`` started
directly (what the bootstrap would run). All repositories, the flow and the generated
sensitive-properties key live under the state dir.

Trust: the web port speaks HTTPS only, with a certificate from the platform CA (``<state>/nifi/tls``, renewed by
``stack up`` at two thirds of its life; NiFi reloads it) and the platform CA as its truststore. People log in with
OpenID Connect against Keycloak (client ``radlake-nifi``, whose secret reaches NiFi only through ``nifi.properties``,
0600); the platform's automation presents its client certificate (``platform_layer.nifi_access``), NiFi's initial
administrator. ``after_start`` sets the access policies (:mod:`infra.components.nifi_policies`). NiFi's management
server (health for a bootstrap) has no TLS option: it stays on loopback.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
from pathlib import Path

import httpx
import hvac

from infra import process
from infra.component import Component, stack_lock
from infra.components.nifi_policies import ensure_policies
from infra.downloads import fetch_maven_file, maven_cache_path, package_with_maven
from infra.errors import StackError
from infra.process import answers_200
from platform_layer.endpoints import nifi_url
from platform_layer.errors import VaultUnavailable
from platform_layer.java import find_java_home
from platform_layer.nifi_access import PLATFORM_IDENTITY, NiFiAccess, platform_access
from platform_layer.realm import NIFI_CLIENT, NIFI_GROUPS_CLAIM, client_kv_path, issuer, read_client_record
from platform_layer.tls import CertificateError, ca_file, ensure_certificate, needs_renewal
from platform_layer.vault import admin_client

# Python processors kept in the repository (nifi/python/extensions), found by NiFi at start.
PYTHON_EXTENSIONS = Path(__file__).resolve().parents[2] / "nifi" / "python" / "extensions"

# HandleHttpRequest (the provider edges) needs StandardHttpContextMap and, for HTTPS, an SSL context service
# (StandardRestrictedSSLContextService), whose NARs the assembled NiFi lacks: they go into the autoload
# directory, which NiFi loads at start (and watches).
AUTOLOADED_NARS = ("nifi-http-context-map-nar", "nifi-ssl-context-service-nar")

# NARs Maven Central does not serve for NiFi 2.x, rebuilt from their published jars by
# infra/maven/<id>.pom.xml (nifi-nar-maven-plugin), with upstream coordinates.
REBUILT_NARS = ("nifi-standard-nar", "nifi-update-attribute-nar")

# NARs built from this repository's sources (infra/maven/<id>.pom.xml and its source folder), kept apart from the
# assembled distribution (other checkouts share it) and loaded from a library directory of their own.
RADLAKE_NARS = {"radlake-noop-provenance-nar": "noop-provenance"}
NO_PROVENANCE = "local.radlake.nifi.provenance.NoOpProvenanceRepository"
MAVEN_DIR = Path(__file__).resolve().parents[1] / "maven"

# NiFi's management server (health, diagnostics for the bootstrap) listens next to the web port.
MANAGEMENT_PORT_OFFSET = 100

SERVER_NAME = "nifi.radlake.local"
# The claim of a person's Keycloak token that names them in NiFi (the groups come from NIFI_GROUPS_CLAIM).
OIDC_IDENTITY_CLAIM = "preferred_username"

LOGBACK = """<?xml version="1.0" encoding="UTF-8"?>
<configuration scan="false">
    <contextListener class="ch.qos.logback.classic.jul.LevelChangePropagator">
        <resetJUL>true</resetJUL>
    </contextListener>
    <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
        <encoder class="ch.qos.logback.classic.encoder.PatternLayoutEncoder">
            <pattern>%date %level [%thread] %logger{40} %msg%n</pattern>
        </encoder>
    </appender>
    <logger name="org.apache.nifi" level="INFO"/>
    <logger name="org.apache.nifi.processors" level="WARN"/>
    <logger name="org.apache.nifi.controller.repository.StandardProcessSession" level="WARN"/>
    <logger name="org.apache.nifi.web.server.RequestLog" level="WARN"/>
    <logger name="org.apache.nifi.web.security" level="WARN"/>
    <logger name="org.apache.nifi.py4j" level="INFO"/>
    <logger name="org.apache.nifi.python" level="INFO"/>
    <logger name="py4j" level="WARN"/>
    <logger name="org.eclipse.jetty" level="WARN"/>
    <logger name="org.springframework" level="WARN"/>
    <logger name="org.glassfish.jersey" level="ERROR"/>
    <root level="INFO">
        <appender-ref ref="CONSOLE"/>
    </root>
</configuration>
"""

# A managed authorizer: users and groups in users.xml, policies in authorizations.xml. The platform's certificate is
# the initial administrator; people are not listed here: NiFi takes their groups from their login token and matches
# them by name to the groups in users.xml (StandardManagedAuthorizer).
AUTHORIZERS = """<?xml version="1.0" encoding="UTF-8"?>
<authorizers>
    <userGroupProvider>
        <identifier>file-user-group-provider</identifier>
        <class>org.apache.nifi.authorization.FileUserGroupProvider</class>
        <property name="Users File">{users}</property>
        <property name="Initial User Identity 1">{admin}</property>
    </userGroupProvider>
    <accessPolicyProvider>
        <identifier>file-access-policy-provider</identifier>
        <class>org.apache.nifi.authorization.FileAccessPolicyProvider</class>
        <property name="User Group Provider">file-user-group-provider</property>
        <property name="Authorizations File">{authorizations}</property>
        <property name="Initial Admin Identity">{admin}</property>
        <property name="Node Group"></property>
    </accessPolicyProvider>
    <authorizer>
        <identifier>managed-authorizer</identifier>
        <class>org.apache.nifi.authorization.StandardManagedAuthorizer</class>
        <property name="Access Policy Provider">file-access-policy-provider</property>
    </authorizer>
</authorizers>
"""

STATE_MANAGEMENT = """<?xml version="1.0" encoding="UTF-8"?>
<stateManagement>
    <local-provider>
        <id>local-provider</id>
        <class>org.apache.nifi.controller.state.providers.local.WriteAheadLocalStateProvider</class>
        <property name="Directory">{directory}</property>
        <property name="Always Sync">false</property>
        <property name="Partitions">16</property>
        <property name="Checkpoint Interval">2 mins</property>
    </local-provider>
</stateManagement>
"""


class NiFi(Component):
    name = "nifi"
    java_major = 21

    @property
    def external(self) -> bool:
        return bool(self.settings.nifi_url)

    @property
    def address(self) -> str:
        return nifi_url(self.settings)

    @property
    def api_url(self) -> str:
        return f"{self.address}/nifi-api"

    @property
    def management_port(self) -> int:
        return self.settings.nifi_port + MANAGEMENT_PORT_OFFSET

    @property
    def ports(self) -> list[int]:
        return [self.settings.nifi_port, self.management_port]

    @property
    def version(self) -> str:
        about = self._about()
        if about is not None:
            return about.get("version", self.settings.nifi_version)
        return "external" if self.external else self.settings.nifi_version

    @property
    def distribution(self) -> Path:
        """The assembled NiFi (lib/, python/) in the cache, shared by every state dir."""
        return self.settings.cache_dir / f"nifi-{self.settings.nifi_version}"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def python_environments(self) -> Path:
        """Where NiFi installs each Python processor's environment: installed software, not state, so it lives
        in the cache (one per interpreter that builds them, since a virtualenv points at its base Python)."""
        key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
        return self.settings.cache_dir / "nifi-python" / f"{self.settings.nifi_version}-{key}"

    @property
    def sensitive_key_file(self) -> Path:
        return self.home / "sensitive-props.key"

    @property
    def radlake_nar_dir(self) -> Path:
        """The NARs built from radlake's sources, in the cache under a digest of those sources."""
        digest = hashlib.sha256()
        for nar_id, source in sorted(RADLAKE_NARS.items()):
            for path in [MAVEN_DIR / f"{nar_id}.pom.xml", *sorted((MAVEN_DIR / source).rglob("*"))]:
                if path.is_file():
                    digest.update(path.relative_to(MAVEN_DIR).as_posix().encode() + b"\0" + path.read_bytes())
        return self.settings.cache_dir / f"radlake-nars-{self.settings.nifi_version}-{digest.hexdigest()[:12]}"

    # --- install -----------------------------------------------------------------------------
    def install(self) -> None:
        for artifact in AUTOLOADED_NARS:
            fetch_maven_file(self.settings.cache_dir, "org.apache.nifi", artifact, self.settings.nifi_version, "nar")
        self._build_radlake_nars()
        version = self.settings.nifi_version
        marker = self.distribution / ".assembled"
        layout = f"nifi {version}; rebuilt NARs: {', '.join(REBUILT_NARS)}\n"
        if marker.exists() and marker.read_text() == layout:
            return
        java_home = find_java_home(self.java_major, self.settings.java_home)
        build_dir = self.settings.cache_dir / "build" / f"nifi-{version}"
        staging = self.distribution.with_name(self.distribution.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(build_dir, ignore_errors=True)
        props = {"nifi.version": version, "nifi.home": str(staging), "nifi.build.dir": str(build_dir / "lib")}
        package_with_maven(self.settings.cache_dir, "nifi.pom.xml", props, java_home)
        for nar_id in REBUILT_NARS:
            nar_build = build_dir / nar_id
            package_with_maven(
                self.settings.cache_dir,
                f"{nar_id}.pom.xml",
                {"nifi.version": version, "nar.build.dir": str(nar_build)},
                java_home,
            )
            nar = nar_build / f"{nar_id}-{version}.nar"
            if not nar.exists():
                raise StackError(f"nifi: building {nar_id} {version} produced no {nar}")
            shutil.copy2(nar, staging / "lib" / nar.name)
        shutil.rmtree(self.distribution, ignore_errors=True)
        staging.rename(self.distribution)
        shutil.rmtree(build_dir, ignore_errors=True)
        marker.write_text(layout)

    def _build_radlake_nars(self) -> None:
        version, target = self.settings.nifi_version, self.radlake_nar_dir
        missing = [nar_id for nar_id in RADLAKE_NARS if not (target / f"{nar_id}-{version}.nar").exists()]
        if not missing:
            return
        java_home = find_java_home(self.java_major, self.settings.java_home)
        target.mkdir(parents=True, exist_ok=True)
        for nar_id in missing:
            build_dir = self.settings.cache_dir / "build" / f"{nar_id}-{version}"
            shutil.rmtree(build_dir, ignore_errors=True)
            package_with_maven(self.settings.cache_dir, f"{nar_id}.pom.xml",
                               {"nifi.version": version, "nar.build.dir": str(build_dir)}, java_home)
            nar = build_dir / f"{nar_id}-{version}.nar"
            if not nar.exists():
                raise StackError(f"nifi: building {nar_id} {version} produced no {nar}")
            partial = target / f".{nar.name}.part"
            shutil.copyfile(nar, partial)
            partial.rename(target / nar.name)
            shutil.rmtree(build_dir, ignore_errors=True)

    # --- configuration -----------------------------------------------------------------------
    def _sensitive_props_key(self) -> str:
        """The key that encrypts sensitive properties in flow.json.gz: generated once, kept 0600."""
        path = self.sensitive_key_file
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
        return path.read_text().strip()

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def properties(self, oidc_client_secret: str) -> dict[str, str]:
        """nifi.properties for a single node, HTTPS only on loopback, people through Keycloak and the platform
        through its client certificate; every path under the state dir."""
        s, home, dist = self.settings, self.home, self.distribution
        return {
            "nifi.flow.configuration.file": str(self.conf_dir / "flow.json.gz"),
            "nifi.flow.configuration.archive.enabled": "true",
            "nifi.flow.configuration.archive.dir": str(self.conf_dir / "archive"),
            "nifi.flow.configuration.archive.max.time": "7 days",
            "nifi.flow.configuration.archive.max.storage": "100 MB",
            "nifi.flowcontroller.autoResumeState": "true",
            "nifi.flowcontroller.graceful.shutdown.period": "10 sec",
            "nifi.flowservice.writedelay.interval": "500 ms",
            "nifi.administrative.yield.duration": "30 sec",
            "nifi.bored.yield.duration": "10 millis",
            "nifi.queue.backpressure.count": "10000",
            "nifi.queue.backpressure.size": "1 GB",
            "nifi.ui.banner.text": "radlake (local)",
            "nifi.nar.library.directory": str(dist / "lib"),
            "nifi.nar.library.directory.radlake": str(self.radlake_nar_dir),
            "nifi.nar.library.autoload.directory": str(home / "extensions"),
            "nifi.nar.working.directory": str(home / "work" / "nar"),
            "nifi.nar.unpack.uber.jar": "false",
            "nifi.upload.working.directory": str(home / "work" / "uploads"),
            "nifi.python.command": sys.executable,
            "nifi.python.framework.source.directory": str(dist / "python" / "framework"),
            "nifi.python.extensions.source.directory.default": str(PYTHON_EXTENSIONS),
            "nifi.python.working.directory": str(self.python_environments),
            # One process per provider edge processor (up to nifi_python_processes per processor type, then they
            # share round-robin), so one provider's upload cannot hold the interpreter (and its GIL) that another
            # provider's requests need. NiFi refuses to create a processor beyond the total: room for every type.
            "nifi.python.max.processes": str(self.settings.nifi_python_processes
                                             * max(1, len(list(PYTHON_EXTENSIONS.glob("*.py"))))),
            "nifi.python.max.processes.per.extension.type": str(self.settings.nifi_python_processes),
            "nifi.state.management.configuration.file": str(self.conf_dir / "state-management.xml"),
            "nifi.state.management.provider.local": "local-provider",
            "nifi.state.management.provider.cluster": "",
            "nifi.state.management.embedded.zookeeper.start": "false",
            "nifi.database.directory": str(home / "database_repository"),
            "nifi.flowfile.repository.implementation":
                "org.apache.nifi.controller.repository.WriteAheadFlowFileRepository",
            "nifi.flowfile.repository.wal.implementation": "org.apache.nifi.wali.SequentialAccessWriteAheadLog",
            "nifi.flowfile.repository.directory": str(home / "flowfile_repository"),
            "nifi.flowfile.repository.checkpoint.interval": "20 secs",
            "nifi.flowfile.repository.always.sync": "false",
            "nifi.flowfile.repository.retain.orphaned.flowfiles": "true",
            "nifi.swap.manager.implementation": "org.apache.nifi.controller.FileSystemSwapManager",
            "nifi.queue.swap.threshold": "20000",
            "nifi.content.repository.implementation": "org.apache.nifi.controller.repository.FileSystemRepository",
            "nifi.content.claim.max.appendable.size": "50 KB",
            "nifi.content.repository.directory.default": str(home / "content_repository"),
            # No content archive: it would keep the original, not yet de-identified request bodies after
            # their FlowFiles are done (and blocks content writes on a fullish disk while it has any).
            "nifi.content.repository.archive.enabled": "false",
            "nifi.content.repository.always.sync": "false",
            # No provenance event is kept: HandleHttpRequest's receive event holds every request header (the
            # provider's bearer token) and the request URI (an original Study UID). See docs/security.md.
            "nifi.provenance.repository.implementation": NO_PROVENANCE,
            "nifi.components.status.repository.implementation":
                "org.apache.nifi.controller.status.history.VolatileComponentStatusRepository",
            "nifi.components.status.repository.buffer.size": "1440",
            "nifi.components.status.snapshot.frequency": "1 min",
            "nifi.nar.persistence.provider.implementation": "org.apache.nifi.nar.StandardNarPersistenceProvider",
            "nifi.nar.persistence.provider.properties.directory": str(home / "nar_repository"),
            "nifi.asset.manager.implementation": "org.apache.nifi.asset.StandardAssetManager",
            "nifi.asset.manager.properties.directory": str(home / "assets"),
            "nifi.remote.input.host": "",
            "nifi.remote.input.secure": "true",
            "nifi.remote.input.socket.port": "",
            "nifi.remote.input.http.enabled": "false",
            # HTTPS only: an empty HTTP port turns plain HTTP off.
            "nifi.web.http.host": "",
            "nifi.web.http.port": "",
            "nifi.web.https.host": "127.0.0.1",
            "nifi.web.https.port": str(s.nifi_port),
            "nifi.web.jetty.working.directory": str(home / "work" / "jetty"),
            "nifi.web.jetty.threads": "40",
            "nifi.web.max.header.size": "16 KB",
            "nifi.web.proxy.context.path": "",
            "nifi.web.proxy.host": "",
            "nifi.web.max.content.size": "",
            "nifi.web.max.requests.per.second": "30000",
            "nifi.web.max.access.token.requests.per.second": "25",
            "nifi.web.request.timeout": "60 secs",
            "nifi.web.request.ip.whitelist": "",
            "nifi.web.should.send.server.version": "true",
            "nifi.web.request.log.format": '%{client}a - %u %t "%r" %s %O',
            "nifi.security.keystoreType": "PEM",
            "nifi.security.keystore.certificate": str(self.tls_dir / "nifi.crt"),
            "nifi.security.keystore.privateKey": str(self.tls_dir / "nifi.key"),
            "nifi.security.truststoreType": "PEM",
            "nifi.security.truststore.certificate": str(ca_file(s)),
            # The certificate is renewed in place by `stack up`; NiFi picks up the new files.
            "nifi.security.autoreload.enabled": "true",
            "nifi.security.autoreload.interval": "10 mins",
            "nifi.security.allow.anonymous.authentication": "false",
            "nifi.security.user.authorizer": "managed-authorizer",
            "nifi.authorizer.configuration.file": str(self.conf_dir / "authorizers.xml"),
            "nifi.security.user.login.identity.provider": "",
            "nifi.security.user.jws.key.rotation.period": "PT1H",
            "nifi.security.user.oidc.discovery.url": f"{issuer(s)}/.well-known/openid-configuration",
            "nifi.security.user.oidc.connect.timeout": "5 secs",
            "nifi.security.user.oidc.read.timeout": "5 secs",
            "nifi.security.user.oidc.client.id": NIFI_CLIENT,
            "nifi.security.user.oidc.client.secret": oidc_client_secret,
            "nifi.security.user.oidc.preferred.jwsalgorithm": "RS256",
            "nifi.security.user.oidc.additional.scopes": "",
            "nifi.security.user.oidc.claim.identifying.user": OIDC_IDENTITY_CLAIM,
            "nifi.security.user.oidc.fallback.claims.identifying.user": "",
            "nifi.security.user.oidc.claim.groups": NIFI_GROUPS_CLAIM,
            # Keycloak's certificate comes from the platform CA: verify it with NiFi's truststore.
            "nifi.security.user.oidc.truststore.strategy": "NIFI",
            "nifi.security.user.oidc.token.refresh.window": "60 secs",
            "nifi.sensitive.props.key": self._sensitive_props_key(),
            "nifi.sensitive.props.algorithm": "NIFI_PBKDF2_AES_GCM_256",
            "nifi.cluster.is.node": "false",
            "nifi.analytics.predict.enabled": "false",
            "nifi.monitor.long.running.task.schedule": "",
            "nifi.diagnostics.on.shutdown.enabled": "false",
            "nifi.performance.tracking.percentage": "0",
        }

    def prepare(self) -> None:
        """Certificates (NiFi's and the platform's client certificate) and the login client's secret from Vault,
        then the configuration."""
        vault = self._vault()
        self._renew_certificates(vault)
        try:
            record = read_client_record(vault, client_kv_path(NIFI_CLIENT), self.settings.vault_kv_mount)
        except VaultUnavailable as err:
            raise StackError(f"nifi: {err}") from err
        if record is None:
            raise StackError(f"nifi: Vault holds no secret of the Keycloak client {NIFI_CLIENT} that people log in "
                             "to NiFi with; start Keycloak first (`radlake stack up keycloak nifi`)")
        self.write_configuration(record["client_secret"])

    def write_configuration(self, oidc_client_secret: str) -> None:
        """conf/ under the state dir: nifi.properties (0600: it holds the login client's secret and the
        sensitive-properties key), authorizers.xml, logging and state management."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("extensions", "work", "state/local"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        for artifact in AUTOLOADED_NARS:  # fetched into the cache by install()
            nar = maven_cache_path(self.settings.cache_dir, "org.apache.nifi", artifact, self.settings.nifi_version, "nar")
            target = self.home / "extensions" / nar.name
            if nar.exists() and not target.exists():
                shutil.copyfile(nar, target.with_name(f".{nar.name}.part"))  # this dir's mode, not the cache's
                target.with_name(f".{nar.name}.part").rename(target)
        # A provenance repository left on disk holds request headers (bearer tokens) and URIs; nothing reads it now.
        shutil.rmtree(self.home / "provenance_repository", ignore_errors=True)
        properties_file = self.conf_dir / "nifi.properties"
        # The file holds secrets: create it private before writing.
        properties_file.touch(mode=0o600, exist_ok=True)
        properties_file.chmod(0o600)
        properties_file.write_text("".join(f"{k}={v}\n" for k, v in self.properties(oidc_client_secret).items()))
        (self.conf_dir / "authorizers.xml").write_text(AUTHORIZERS.format(
            users=self.conf_dir / "users.xml", authorizations=self.conf_dir / "authorizations.xml",
            admin=PLATFORM_IDENTITY))
        (self.conf_dir / "logback.xml").write_text(LOGBACK)
        (self.conf_dir / "state-management.xml").write_text(
            STATE_MANAGEMENT.format(directory=self.home / "state" / "local")
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        java = find_java_home(self.java_major, self.settings.java_home) / "bin" / "java"
        lib = self.distribution / "lib"
        class_path = [str(self.conf_dir), *sorted(str(p) for p in lib.glob("*.jar"))]
        argv = [
            str(java),
            "-Xms256m", f"-Xmx{self.settings.nifi_heap}",
            "-XX:+UseG1GC", "-XX:MaxMetaspaceSize=512m",
            "-Djava.awt.headless=true",
            "-Dsun.net.http.allowRestrictedHeaders=true",
            "-Djava.protocol.handler.pkgs=sun.net.www.protocol",
            "-Djavax.security.auth.useSubjectCredsOnly=true",
            f"-Dnifi.properties.file.path={self.conf_dir / 'nifi.properties'}",
            f"-Dorg.apache.nifi.bootstrap.config.log.dir={self.settings.logs_dir}",
            f"-Dorg.apache.nifi.management.server.address=127.0.0.1:{self.management_port}",
            "--class-path", os.pathsep.join(class_path),
            "org.apache.nifi.NiFi",
        ]
        return argv, {}

    def stop(self) -> None:
        """SIGTERM NiFi alone first: it stops its Python processes itself; then clear the process group."""
        if self.external:
            return
        with stack_lock(self.settings):
            pid = self.pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while process.pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                process.terminate(pid)
            self.pid_file.unlink(missing_ok=True)

    def renew_certificates(self) -> bool:
        """NiFi's own certificate (a running NiFi reloads it within 10 minutes) and the platform's client
        certificate, when due."""
        if self.external or not needs_renewal(self.tls_dir / "nifi.crt"):
            return False
        self._renew_certificates(self._vault())
        return True

    def _renew_certificates(self, vault: hvac.Client) -> None:
        try:
            ensure_certificate(vault, self.tls_dir, "nifi", SERVER_NAME)
            platform_access(self.settings, vault)
        except CertificateError as err:
            raise StackError(f"nifi: {err}") from err

    def _vault(self) -> hvac.Client:
        try:
            return admin_client(self.settings)
        except VaultUnavailable as err:
            raise StackError(f"nifi: its certificates and login secret come from Vault: {err}; start Vault first "
                             "(`radlake stack up vault keycloak nifi`)") from err

    # --- access ------------------------------------------------------------------------------
    def access(self) -> NiFiAccess:
        """The platform's certificate and the CA that verifies NiFi."""
        try:
            return platform_access(self.settings)
        except (VaultUnavailable, CertificateError) as err:
            raise StackError(f"nifi: the platform's client certificate comes from Vault: {err}") from err

    def after_start(self) -> None:
        """Certificates renewed when due (a running NiFi reloads its own within 10 minutes), then the access
        policies set to their description (the platform's certificate may)."""
        if self.external:
            return
        if needs_renewal(self.tls_dir / "nifi.crt"):
            self._renew_certificates(self._vault())
        with self.access().client() as client:  # access() renews the platform's certificate when due
            ensure_policies(client, self._root_group_id())

    def _root_group_id(self) -> str:
        """The root process group's id, from the flow NiFi writes when it first starts (what NiFi's own
        FileAccessPolicyProvider reads to seed the initial administrator's policies)."""
        flow = self.conf_dir / "flow.json.gz"
        process.wait_until(flow.exists, timeout_s=60, what=f"nifi writing {flow}", log_file=self.log_file)
        with gzip.open(flow, "rt") as stream:
            return str(json.load(stream)["rootGroup"]["instanceIdentifier"])

    # --- health ------------------------------------------------------------------------------
    def _about(self) -> dict | None:
        """NiFi's ``/flow/about`` as the platform sees it (through its certificate), None while it does not answer."""
        try:
            with self.access().client(timeout_s=3) as client:
                resp = client.get("/flow/about")
        except (httpx.HTTPError, OSError, ssl.SSLError, StackError):
            return None
        if resp.status_code != 200:
            return None
        return resp.json().get("about", {})

    def responding(self) -> bool:
        """The web server answers over verified TLS (NiFi's login configuration is public)."""
        return answers_200(f"{self.api_url}/authentication/configuration", ca_file(self.settings))

    def healthy(self) -> bool:
        """Answering, and the platform's certificate is let in."""
        return self.responding() and self._about() is not None
