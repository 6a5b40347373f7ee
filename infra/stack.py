"""The local stack as a whole: which components exist, in which order they start, and their status."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable

from infra.component import Component, ComponentStatus
from infra.errors import StackError
from platform_layer.settings import Settings
from platform_layer.state import lock_down

log = logging.getLogger(__name__)

# Start order; stop runs in reverse. name -> "module:Class"
COMPONENTS: dict[str, str] = {
    "vault": "infra.components.vault:Vault",
    "keycloak": "infra.components.keycloak:Keycloak",
    "kafka": "infra.components.kafka:Kafka",
    "registry": "infra.components.registry:SchemaRegistry",
    "nifi": "infra.components.nifi:NiFi",
    "spark": "infra.components.spark:Spark",
    "gateway": "infra.components.gateway:Gateway",
}


def component(name: str, settings: Settings) -> Component:
    if name not in COMPONENTS:
        raise StackError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    module_name, class_name = COMPONENTS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(settings)


def _selected(names: Iterable[str] | None) -> list[str]:
    wanted = list(names or COMPONENTS)
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
    return [n for n in COMPONENTS if n in wanted]


def up(settings: Settings, names: Iterable[str] | None = None) -> dict[str, ComponentStatus]:
    """Install and start the named components (all by default) in dependency order; idempotent."""
    lock_down(settings)
    statuses: dict[str, ComponentStatus] = {}
    for name in _selected(names):
        started = time.monotonic()
        statuses[name] = component(name, settings).start()
        log.info("%s healthy in %.1fs", name, time.monotonic() - started)
    return statuses


def down(settings: Settings, names: Iterable[str] | None = None) -> None:
    for name in reversed(_selected(names)):
        component(name, settings).stop()


def status(settings: Settings, names: Iterable[str] | None = None) -> list[ComponentStatus]:
    return [component(name, settings).status() for name in _selected(names)]
