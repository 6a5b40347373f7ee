"""The stack's supervisor: restarts a component that died or stayed unhealthy, with back-off and a crash-loop limit.

:func:`decide` is the policy, a pure function of what was observed and when. :func:`supervise` is the loop around
it, run as one process (``radlake stack supervise``, started by ``stack up``). It watches the components that
``stack up`` recorded in ``<state>/run/supervised.json`` (``stack down`` removes them, so a component stopped on
purpose is never brought back) and restarts one with :meth:`Component.start`, the same code as ``stack up``: Vault
is unsealed again, Kafka's credentials upserted. Each restart and give-up is a line of
:mod:`platform_layer.supervision`'s log. ``stack up`` and ``stack down`` hold ``<state>/run/stack.lock``; the
supervisor acts only while it can take that lock, so it never races them.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from infra.component import Component, stack_lock
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.supervision import SupervisionEvent, append, events_file, supervisor_dir

log = logging.getLogger(__name__)


# --- the policy ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestartPolicy:
    unhealthy_after_s: float
    backoff_initial_s: float
    backoff_max_s: float
    crash_loop_restarts: int
    crash_loop_window_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(settings.supervisor_unhealthy_after_s, settings.supervisor_backoff_initial_s,
                   settings.supervisor_backoff_max_s, settings.supervisor_crash_loop_restarts,
                   settings.supervisor_crash_loop_window_s)

    def backoff_s(self, restarts_in_window: int) -> float:
        """The wait after the n-th restart in the window before the next (the first restart is immediate)."""
        if restarts_in_window <= 0:
            return 0.0
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** (restarts_in_window - 1))


@dataclass(frozen=True)
class Watch:
    """What the supervisor remembers of one component."""

    restarts: tuple[float, ...] = ()  # monotonic times of the restart attempts still inside the window
    unhealthy_since: float | None = None
    gave_up: bool = False


class Action(enum.Enum):
    NONE = "none"
    WAIT = "wait"  # down, but inside its back-off
    RESTART = "restart"
    GIVE_UP = "give-up"
    RECOVERED = "recovered"


def decide(watch: Watch, *, alive: bool, healthy: bool, now: float, policy: RestartPolicy) -> tuple[Action, Watch]:
    """What to do about a component (``alive``: its process runs; ``healthy``: its health check passes)."""
    if watch.gave_up:
        if alive and healthy:  # someone brought it back (`stack up`): watch it again from scratch
            return Action.RECOVERED, Watch()
        return Action.NONE, watch
    if alive and healthy:
        return Action.NONE, replace(watch, unhealthy_since=None)
    if alive:
        since = now if watch.unhealthy_since is None else watch.unhealthy_since
        if now - since < policy.unhealthy_after_s:
            return Action.NONE, replace(watch, unhealthy_since=since)
    recent = tuple(t for t in watch.restarts if now - t < policy.crash_loop_window_s)
    if len(recent) >= policy.crash_loop_restarts:
        return Action.GIVE_UP, Watch(restarts=recent, gave_up=True)
    if recent and now < recent[-1] + policy.backoff_s(len(recent)):
        return Action.WAIT, replace(watch, restarts=recent)
    return Action.RESTART, Watch(restarts=(*recent, now))


# --- what the stack asks to be supervised ---------------------------------------------------------------------
def supervised_file(settings: Settings) -> Path:
    return settings.state_dir / "run" / "supervised.json"


def supervised(settings: Settings) -> list[str]:
    try:
        return list(json.loads(supervised_file(settings).read_text()))
    except (FileNotFoundError, ValueError):
        return []


def set_supervised(settings: Settings, names: Iterable[str]) -> None:
    path = supervised_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(sorted(set(names))))


def status_file(settings: Settings) -> Path:
    return supervisor_dir(settings) / "status.json"


# --- the loop ----------------------------------------------------------------------------------------------------
def _reap_children() -> None:
    """Collect the exit status of components this process restarted and that exited since (no zombies)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Supervisor:
    """One pass (:meth:`check`) looks at every supervised component and acts on it; :func:`supervise` loops."""

    def __init__(self, settings: Settings, component: Callable[[str], Component], order: Iterable[str],
                 clock: Callable[[], float] = time.monotonic,
                 renew_edges: Callable[[], list[str]] | None = None) -> None:
        self.settings = settings
        self.component = component
        self.order = list(order)  # start order: Vault comes back before what needs it
        self.policy = RestartPolicy.from_settings(settings)
        self.clock = clock
        self.watches: dict[str, Watch] = {}
        self.log_path = events_file(settings.state_dir)
        self.renew_edges = renew_edges  # the edges' certificate lives in NiFi's parameters, not in a component

    def _record(self, name: str, event: str, reason: str = "", watch: Watch | None = None) -> None:
        restarts = len(watch.restarts) if watch else 0
        append(self.log_path, SupervisionEvent(time.time(), name, event, reason, restarts,
                                               self.policy.backoff_s(restarts) if watch else 0.0))

    def check(self, stop: threading.Event | None = None) -> None:
        wanted = set(supervised(self.settings))
        for name in [n for n in self.order if n in wanted]:
            if stop is not None and stop.is_set():
                return
            component = self.component(name)
            if name not in self.watches:
                self.watches[name] = Watch()
                self._record(name, "watching")
            pid = component.pid()
            alive = pid is not None
            healthy = alive and component.healthy()
            action, watch = decide(self.watches[name], alive=alive, healthy=healthy, now=self.clock(),
                                   policy=self.policy)
            self.watches[name] = watch
            if action is Action.RESTART:
                self._restart(component, watch, "exited" if not alive else
                              f"unhealthy for {self.policy.unhealthy_after_s:.0f}s")
            elif action is Action.GIVE_UP:
                log.error("%s: %d restarts within %.0fs; giving up until the next `radlake stack up`", name,
                          len(watch.restarts), self.policy.crash_loop_window_s)
                self._record(name, "gave-up", f"{len(watch.restarts)} restarts within "
                             f"{self.policy.crash_loop_window_s:.0f}s", watch)
            elif action is Action.RECOVERED:
                self._record(name, "recovered", "healthy again")
        for name in [n for n in self.watches if n not in wanted]:  # stopped on purpose by `stack down`
            del self.watches[name]

    def _restart(self, component: Component, watch: Watch, reason: str) -> None:
        log.warning("%s %s: restarting (attempt %d in the window)", component.name, reason, len(watch.restarts))
        try:
            if component.pid() is not None:
                component.stop()
            component.start()
        except Exception as err:  # noqa: BLE001 - any failure to start is this attempt's outcome, recorded below
            log.warning("%s: restart failed: %s", component.name, err)
            self._record(component.name, "restart-failed", f"{reason}; {type(err).__name__}: {err}"[:2000], watch)
        else:
            log.info("%s: restarted and healthy", component.name)
            self._record(component.name, "restarted", reason, watch)
        finally:
            _reap_children()

    def renew(self, stop: threading.Event | None = None, names: Iterable[str] | None = None) -> None:
        """Renew what is due of every healthy component of ``names`` (the supervised ones by default), then the
        edges' certificate (``renew_edges``) when NiFi is one of them."""
        wanted = set(supervised(self.settings) if names is None else names)
        nifi_serving = False
        for name in [n for n in self.order if n in wanted]:
            if stop is not None and stop.is_set():
                return
            component = self.component(name)
            if component.pid() is None or not component.healthy():
                continue  # the restart policy deals with it; it renews at its start
            nifi_serving = nifi_serving or name == "nifi"
            try:
                renewed = component.renew_certificates()
            except Exception as err:  # noqa: BLE001 - any failure is this attempt's outcome; the next pass retries
                log.error("%s: renewing its certificate failed: %s", name, err)
                self._record(name, "renew-failed", f"{type(err).__name__}: {err}"[:2000])
                continue
            if renewed:
                log.info("%s: certificate renewed and served", name)
                self._record(name, "renewed", "certificate missing or past two thirds of its life")
        if self.renew_edges is not None and nifi_serving:
            try:
                changed = self.renew_edges()
            except Exception as err:  # noqa: BLE001 - as above
                log.error("edges: pointing them at a renewed certificate failed: %s", err)
                self._record("edges", "renew-failed", f"{type(err).__name__}: {err}"[:2000])
            else:
                if changed:
                    self._record("edges", "renewed", f"edges of {', '.join(sorted(changed))} follow the stack")

    def write_status(self) -> None:
        now = self.clock()
        state = {name: {"gave_up": w.gave_up, "restarts_in_window": len(w.restarts),
                        "unhealthy_for_s": None if w.unhealthy_since is None else round(now - w.unhealthy_since, 1)}
                 for name, w in self.watches.items()}
        write_private(status_file(self.settings),
                      json.dumps({"pid": os.getpid(), "time": time.time(), "components": state}))


def supervise(settings: Settings, component: Callable[[str], Component], order: Iterable[str],
              stop: threading.Event, renew_edges: Callable[[], list[str]] | None = None) -> None:
    """Check every ``supervisor_interval_s`` and renew certificates every ``supervisor_renew_interval_s`` until
    ``stop`` is set; skips a pass while ``stack up``/``down`` run."""
    supervisor = Supervisor(settings, component, order, renew_edges=renew_edges)
    supervisor.write_status()
    renewed_at = time.monotonic()  # `stack up`, which starts the supervisor, has just renewed what was due
    while not stop.is_set():
        _reap_children()
        with stack_lock(settings, wait=False) as locked:
            if locked:
                supervisor.check(stop)
                if time.monotonic() - renewed_at >= settings.supervisor_renew_interval_s:
                    supervisor.renew(stop)
                    renewed_at = time.monotonic()
        supervisor.write_status()
        stop.wait(settings.supervisor_interval_s)
