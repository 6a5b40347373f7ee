"""The local stack as a whole: which components exist, in which order they start, and their status.

``up`` records what it started as supervised and starts the supervisor (:mod:`infra.supervision`) last, unless
``RADLAKE_SUPERVISE=false``; ``down`` stops the supervisor first, takes what it stops off the supervised set, and
starts the supervisor again when something it watches is still running. Both hold the stack lock, so the
supervisor never acts while they do.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable

from infra import supervision
from infra.component import Component, ComponentStatus, stack_lock
from infra.components.supervisor import Supervisor
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
    "results-bridge": "infra.components.results_bridge:ResultsBridge",
    # monitoring: started on request (`stack up monitoring`), not by a plain `stack up`
    "alert-receiver": "infra.components.monitoring:AlertReceiver",
    "alertmanager": "infra.components.monitoring:Alertmanager",
    "lag-exporter": "infra.components.monitoring:LagExporter",
    "prometheus": "infra.components.monitoring:Prometheus",
    # notebooks: started on request (`stack up notebooks`), not by a plain `stack up`
    "notebooks": "infra.components.notebooks:Notebooks",
    # the admin console: started on request (`stack up console`), after the parts it shows
    "console": "infra.components.console:Console",
}

# Names that select several components.
ALIASES: dict[str, tuple[str, ...]] = {
    "monitoring": ("alert-receiver", "alertmanager", "lag-exporter", "prometheus"),
}

# What `stack up` / `stack down` / `stack status` without names mean. Monitoring and notebooks are left out of `up`:
# more processes (monitoring about 150 MiB, the hub as much again, and each person's server) that a developer
# running the pipeline does not need; so is the console, which an administrator asks for by name (it shows the
# pipeline; it is no part of it). `down` stops them too.
ON_REQUEST = (*ALIASES["monitoring"], "notebooks", "console")
DEFAULT_UP = tuple(name for name in COMPONENTS if name not in ON_REQUEST)


def component(name: str, settings: Settings) -> Component:
    if name not in COMPONENTS:
        raise StackError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    module_name, class_name = COMPONENTS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(settings)


def _selected(names: Iterable[str] | None, default: Iterable[str] = COMPONENTS) -> list[str]:
    wanted = [member for n in (names or default) for member in ALIASES.get(n, (n,))]
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join([*COMPONENTS, *ALIASES])}")
    return [n for n in COMPONENTS if n in wanted]


def selected(names: Iterable[str] | None, *, up: bool = False) -> list[str]:
    """The components ``names`` mean (aliases expanded), in start order; none: the default set of the action."""
    return _selected(names, DEFAULT_UP if up else COMPONENTS)


def supervisable(name: str, settings: Settings) -> bool:
    """A component with a process of the stack's own (not Spark's local mode, not an external service)."""
    return component(name, settings).supervisable


def up(settings: Settings, names: Iterable[str] | None = None) -> dict[str, ComponentStatus]:
    """Install and start the named components (:data:`DEFAULT_UP` by default) in dependency order, then the
    supervisor; idempotent."""
    lock_down(settings)
    statuses: dict[str, ComponentStatus] = {}
    chosen = selected(names, up=True)
    with stack_lock(settings):
        for name in chosen:
            started = time.monotonic()
            statuses[name] = component(name, settings).start()
            log.info("%s healthy in %.1fs", name, time.monotonic() - started)
        if settings.supervise:  # off under systemd (the units run `stack up NAME` with it off), which restarts them
            watched = [*supervision.supervised(settings), *(n for n in chosen if supervisable(n, settings))]
            supervision.set_supervised(settings, watched)
            if watched:
                Supervisor(settings).start()
    return statuses


def down(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Stop the supervisor, then the named components (all by default) in reverse order."""
    supervisor = Supervisor(settings)
    supervisor.stop()  # first: it would restart what is being stopped
    with stack_lock(settings):
        chosen = _selected(names)
        supervision.set_supervised(settings, [n for n in supervision.supervised(settings) if n not in chosen])
        for name in reversed(chosen):
            component(name, settings).stop()
        if settings.supervise and supervision.supervised(settings):
            supervisor.start()


def status(settings: Settings, names: Iterable[str] | None = None) -> list[ComponentStatus]:
    """The named components' status; without names, the default set and whichever others are running."""
    chosen = _selected(names) if names else [
        n for n in COMPONENTS if n in DEFAULT_UP or component(n, settings).pid() is not None]
    statuses = [component(name, settings).status() for name in chosen]
    supervisor = Supervisor(settings)
    # shown while it runs, and as down when it should (a supervisor killed with -9 is started by the next `up`)
    if not names and (supervisor.pid() is not None or (settings.supervise and supervision.supervised(settings))):
        statuses.append(supervisor.status())
    return statuses
