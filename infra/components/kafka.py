"""A single-node Apache Kafka 4.x broker in KRaft mode (combined broker + controller) on loopback.

The broker's jars are resolved from Maven Central by ``infra/maven/kafka.pom.xml``; storage is
formatted once under the state dir with a cluster id kept there, then the broker is started.

Nothing on it is anonymous. Clients connect to ``kafka_port`` with SASL/SCRAM-SHA-512 over TLS, as one of
the platform's principals (:data:`platform_layer.principals.KAFKA_PRINCIPALS`, passwords in Vault). The
broker's own listener (``kafka_broker_port``, between brokers and for the stack's set-up) and the KRaft
controller's take TLS client certificates only. Certificates come from the platform's CA in OpenBao
(:mod:`platform_layer.tls`); the broker's is renewed by ``stack up`` once two thirds of its life are gone, and a
running broker reloads it without a restart (dynamic listener configuration).
The StandardAuthorizer refuses what no ACL allows; the administrator and the broker are super users. Topics
are never created on first use: the platform layer creates them with their settings.
"""

from __future__ import annotations

import base64
import subprocess
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from infra.component import Component
from infra.downloads import resolve_with_maven
from infra.errors import StackError
from infra.process import port_open, wait_until
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.errors import VaultUnavailable
from platform_layer.identities import ensure_kafka_credentials, stack_kafka_identity
from platform_layer.java import find_java_home
from platform_layer.principals import KAFKA_ADMIN
from platform_layer.tls import CertificateError, ca_file, ensure_certificate
from platform_layer.vault import admin_client

BROKER_NAME = "kafka.radlake.local"
NODE_ID = "1"
SCRAM_ITERATIONS = 8192
_PROBE = {"socket.timeout.ms": 2000, "log_level": 0}  # a health probe: answer fast, log nothing while it waits

LOG4J2 = """Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
"""


class Kafka(Component):
    name = "kafka"
    java_major = 17

    @property
    def external(self) -> bool:
        return bool(self.settings.kafka_bootstrap)

    @property
    def address(self) -> str:
        return kafka_bootstrap(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port, self.settings.kafka_broker_port]

    @property
    def port_settings(self) -> dict[int, str]:
        s = self.settings
        return {s.kafka_port: "RADLAKE_KAFKA_PORT", s.kafka_controller_port: "RADLAKE_KAFKA_CONTROLLER_PORT",
                s.kafka_broker_port: "RADLAKE_KAFKA_BROKER_PORT"}

    @property
    def tls_dir(self):
        return self.home / "tls"

    @property
    def broker_address(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_broker_port}"

    @property
    def broker_identity(self) -> kafka.CertificateIdentity:
        """The broker's certificate, with which the stack speaks to the broker's own listener."""
        return kafka.CertificateIdentity(str(self.tls_dir / "broker.crt"), str(self.tls_dir / "broker.key"),
                                         str(ca_file(self.settings)))

    @property
    def version(self) -> str:
        return "external" if self.external else self.settings.kafka_version

    @property
    def libs(self):
        return self.settings.cache_dir / f"kafka-{self.settings.kafka_version}" / "libs"

    def install(self) -> None:
        resolve_with_maven(
            self.settings.cache_dir, "kafka.pom.xml", {"kafka.version": self.settings.kafka_version}, self.libs
        )

    def _java(self) -> str:
        return str(find_java_home(self.java_major, self.settings.java_home) / "bin" / "java")

    def _jvm_args(self) -> list[str]:
        return [
            self._java(),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            "-cp", f"{self.libs}/*",
        ]

    def prepare(self) -> None:
        s = self.settings
        data = self.home / "data"
        try:
            self._renew_certificate(admin_client(s))
        except (VaultUnavailable, CertificateError) as err:
            raise StackError(f"kafka: its certificate comes from Vault: {err}; "
                             "start Vault first (`radlake stack up vault kafka`)") from err
        props = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.kafka_controller_port}",
            "listeners": (f"SASL_SSL://127.0.0.1:{s.kafka_port},BROKER://{self.broker_address},"
                          f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}"),
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{s.kafka_port},BROKER://{self.broker_address}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "BROKER",
            "listener.security.protocol.map": "CONTROLLER:SSL,BROKER:SSL,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": kafka.SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls_dir / "broker.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca_file(s)),
            "listener.name.broker.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:CN={BROKER_NAME};User:{KAFKA_ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(data),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by the platform layer with their partitions and settings, never on first use.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        (self.home / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.yaml").write_text(LOG4J2)
        if (data / "meta.properties").exists():
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        argv = [
            *self._jvm_args(), "kafka.tools.StorageTool", "format",
            # one argument with "=": a urlsafe base64 id may start with "-", which argparse takes for an option
            f"--cluster-id={cluster_id_file.read_text().strip()}",
            "-c", str(self.home / "server.properties"), "--standalone",
        ]
        proc = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603
        if proc.returncode != 0:
            raise StackError(f"kafka: formatting storage failed: {(proc.stdout + proc.stderr).strip()[-800:]}")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [*self._jvm_args(), "kafka.Kafka", str(self.home / "server.properties")], {}

    def responding(self) -> bool:
        if not self.external and not port_open(self.settings.kafka_broker_port):
            return False
        try:
            if self.external:
                admin = kafka.admin(self.address, extra=_PROBE, identity=stack_kafka_identity(self.settings))
            else:
                admin = kafka.admin(self.broker_address, extra=_PROBE, identity=self.broker_identity)
            metadata = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any client error means "not answering yet"
            return False
        return bool(metadata.brokers)

    def after_start(self) -> None:
        """Every principal can log in with its password from Vault (SCRAM credentials are upserted on each
        start, so a password changed in Vault takes effect at the next ``stack up``)."""
        if self.external:
            return
        vault = admin_client(self.settings)
        identities = ensure_kafka_credentials(vault, self.settings)
        admin = kafka.admin(self.broker_address, identity=self.broker_identity)
        if self._renew_certificate(vault):  # a running broker past two thirds of its certificate's life
            self._reload_certificate(admin)
        upserts = [UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                          SCRAM_ITERATIONS),
                                                identity.password.encode())
                   for name, identity in identities.items()]
        try:
            for future in admin.alter_user_scram_credentials(upserts).values():
                future.result(30)
        except KafkaException as err:
            raise StackError(f"kafka: cannot set the principals' SCRAM credentials: {err}") from err
        wait_until(lambda: self._scram_login_works(identities[KAFKA_ADMIN]), timeout_s=60,
                   what="kafka (SCRAM logins)", log_file=self.log_file)

    def _scram_login_works(self, identity: kafka.ScramIdentity) -> bool:
        try:
            kafka.admin(self.address, identity=identity, extra=_PROBE).list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    def renew_certificates(self) -> bool:
        if self.external or not self._renew_certificate(admin_client(self.settings)):
            return False
        self._reload_certificate(kafka.admin(self.broker_address, identity=self.broker_identity))
        return True

    def _renew_certificate(self, vault, *, renew: bool = False) -> bool:
        """Whether the broker's certificate was issued anew (missing, past two thirds of its life, or ``renew``)."""
        return ensure_certificate(vault, self.tls_dir, "broker", BROKER_NAME, renew=renew).issued

    def rotate_certificate(self) -> None:
        """Issue the broker a new certificate now and have the running broker serve it, without a restart."""
        self._renew_certificate(admin_client(self.settings), renew=True)
        self._reload_certificate(kafka.admin(self.broker_address, identity=self.broker_identity))

    def _reload_certificate(self, admin) -> None:
        """Kafka reloads a listener's keystore when its location is set again dynamically and the file changed
        since it was loaded (same name and SANs, so the broker accepts it); one request for every listener."""
        keystore = str(self.tls_dir / "broker.pem")
        entries = [ConfigEntry(f"listener.name.{listener}.ssl.keystore.location", keystore,
                               incremental_operation=AlterConfigOpType.SET)
                   for listener in ("sasl_ssl", "broker", "controller")]
        try:
            for future in admin.incremental_alter_configs(
                    [ConfigResource(ResourceType.BROKER, NODE_ID, incremental_configs=entries)]).values():
                future.result(30)
        except KafkaException as err:
            raise StackError(f"kafka: the running broker did not reload its renewed certificate: {err}") from err
