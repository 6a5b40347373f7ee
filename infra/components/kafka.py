"""A single-node Apache Kafka 4.x broker in KRaft mode (combined broker + controller) on loopback.

The broker's jars are resolved from Maven Central by ``infra/maven/kafka.pom.xml``; storage is
formatted once under the state dir with a cluster id kept there, then the broker is started.
"""

from __future__ import annotations

import base64
import subprocess
import uuid

from infra.component import Component
from infra.downloads import resolve_with_maven
from infra.errors import StackError
from infra.process import port_open
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.java import find_java_home

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
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Tests and faust create their topics; production clusters usually turn this off.
            "auto.create.topics.enable": "true",
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
            "-t", cluster_id_file.read_text().strip(),
            "-c", str(self.home / "server.properties"), "--standalone",
        ]
        proc = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603
        if proc.returncode != 0:
            raise StackError(f"kafka: formatting storage failed: {(proc.stdout + proc.stderr).strip()[-800:]}")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [*self._jvm_args(), "kafka.Kafka", str(self.home / "server.properties")], {}

    def responding(self) -> bool:
        if not self.external and not port_open(self.settings.kafka_port):
            return False
        try:
            admin = kafka.admin(self.address, extra={"socket.timeout.ms": 2000, "log_level": 0})
            metadata = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any client error means "not answering yet"
            return False
        return bool(metadata.brokers)
