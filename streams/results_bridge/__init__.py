"""The results bridge: ``prediction created``, ``features computed`` and ``study completed`` pushed to browsers
(Server-Sent Events, WebSocket), filtered by the projects the caller's Keycloak token grants, with replay from a
time or an event id, the predictions' objects behind the same check, and a reference dashboard page.

It lives in ``streams`` because it is one more reader of the platform's event streams (read_committed, no Spark,
no torch), beside the study-completion worker; ``radlake bridge serve`` runs it (``radlake stack up`` starts it).
"""

from streams.results_bridge.access import Scope, scope_of
from streams.results_bridge.app import BridgeConfig, build_app
from streams.results_bridge.hub import Hub, HubError, ObjectIndex, ObjectRef
from streams.results_bridge.positions import Coordinates, Start, StartError, start_of
from streams.results_bridge.service import result_topics, rights, serve

__all__ = ["BridgeConfig", "Coordinates", "Hub", "HubError", "ObjectIndex", "ObjectRef", "Scope", "Start",
           "StartError", "build_app", "result_topics", "rights", "scope_of", "serve", "start_of"]
