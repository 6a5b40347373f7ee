"""Deploy a versioned NiFi flow definition (``nifi/flows/*.json``) into a running NiFi, through nipyapi.

``deploy`` imports the definition as a new process group, gives it its own parameter context (the
definition's parameters, overridden by the caller's values), enables its controller services and starts
it; ``undeploy`` stops and removes the group and its context. Both take the NiFi to speak to explicitly
(:class:`~platform_layer.nifi_access.NiFiAccess`: its URL, the CA that verifies it, and the client certificate
NiFi knows the platform by).

nipyapi keeps its endpoint and TLS context in module-level configuration: each call here points it at ``nifi``
first, so one process should not deploy to two NiFis from two threads at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nipyapi

from lake_schemas.errors import RadlakeError
from platform_layer.nifi_access import NiFiAccess, platform_access
from platform_layer.settings import get_settings

FLOWS_DIR = Path(__file__).parent / "flows"


class DeployError(RadlakeError):
    """A flow definition could not be deployed or removed; the message names the step."""


@dataclass(frozen=True)
class Deployment:
    process_group_id: str
    parameter_context_id: str
    name: str


def flow_path(name: str) -> Path:
    """The versioned flow definition ``nifi/flows/<name>.json``."""
    return FLOWS_DIR / f"{name}.json"


def load_definition(path: Path) -> dict:
    try:
        definition = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DeployError(f"cannot read flow definition {path}: {err}") from err
    if "flowContents" not in definition:
        raise DeployError(f"{path} is not a NiFi flow definition (no flowContents)")
    return definition


def definition_parameters(definition: Mapping) -> dict[str, str | None]:
    """The parameters (name -> value) of the definition's own parameter context."""
    context_name = definition["flowContents"].get("parameterContextName")
    context = definition.get("parameterContexts", {}).get(context_name or "", {})
    return {p["name"]: p.get("value") for p in context.get("parameters", [])}


def sensitive_parameters(definition: Mapping) -> set[str]:
    """Names of the definition's parameters marked sensitive (NiFi encrypts and never shows their values)."""
    context_name = definition["flowContents"].get("parameterContextName")
    context = definition.get("parameterContexts", {}).get(context_name or "", {})
    return {p["name"] for p in context.get("parameters", []) if p.get("sensitive")}


def connect(nifi: NiFiAccess) -> None:
    """Point nipyapi at ``nifi``, verified against its CA and presenting the client certificate (mutual TLS)."""
    nipyapi.config.nifi_config.ssl_context = nifi.ssl_context()
    nipyapi.utils.set_endpoint(nifi.api_url, ssl=True, login=False)


def deploy(
    nifi: NiFiAccess,
    definition_file: Path,
    *,
    name: str,
    parameters: Mapping[str, str] | None = None,
    start: bool = True,
    valid_timeout_s: float = 180.0,
) -> Deployment:
    """Import ``definition_file`` under the root group as ``name`` with a new parameter context ``name``.

    Parameters not given keep the definition's values. Waits until every processor is valid (Python
    processors first build their environment) before starting the group.
    """
    definition = load_definition(definition_file)
    values = definition_parameters(definition)
    sensitive = sensitive_parameters(definition)
    unknown = set(parameters or {}) - set(values)
    if unknown:
        raise DeployError(f"{definition_file.name} has no parameter(s) {', '.join(sorted(unknown))}")
    values.update(parameters or {})

    # The group gets a context created here rather than the one named in the file, so that several
    # deployments of one definition do not share (and overwrite) each other's parameters.
    contents = dict(definition["flowContents"], name=name)
    contents.pop("parameterContextName", None)
    importable = dict(definition, flowContents=contents, parameterContexts={})

    connect(nifi)
    root_id = nipyapi.canvas.get_root_pg_id()
    try:
        context = nipyapi.parameters.create_parameter_context(
            name,
            description=f"Parameters of {name} (from {definition_file.name})",
            parameters=[nipyapi.parameters.prepare_parameter(k, v, sensitive=k in sensitive)
                        for k, v in values.items()],
        )
        group = nipyapi.versioning.import_process_group_definition(root_id, flow_definition=json.dumps(importable))
        nipyapi.parameters.assign_context_to_process_group(group, context.id, identifier_type="id")
    except (nipyapi.nifi.rest.ApiException, ValueError) as err:
        raise DeployError(f"importing {definition_file.name} as {name!r} into {nifi.url} failed: {err}") from err
    deployment = Deployment(process_group_id=group.id, parameter_context_id=context.id, name=name)
    if start:
        start_deployment(nifi, deployment, valid_timeout_s=valid_timeout_s)
    return deployment


def start_deployment(nifi: NiFiAccess, deployment: Deployment, *, valid_timeout_s: float = 180.0) -> None:
    """Enable the group's controller services, wait for valid processors, start every component."""
    connect(nifi)
    pg_id = deployment.process_group_id
    nipyapi.canvas.schedule_all_controllers(pg_id, True, strict=True)
    deadline = time.monotonic() + valid_timeout_s
    while True:
        invalid = nipyapi.canvas.list_invalid_processors(pg_id)
        if not invalid:
            break
        if time.monotonic() > deadline:
            reasons = "; ".join(f"{p.component.name}: {p.component.validation_errors}" for p in invalid)
            raise DeployError(f"{deployment.name}: processors still invalid after {valid_timeout_s:.0f}s: {reasons}")
        time.sleep(1.0)
    if not nipyapi.canvas.schedule_process_group(pg_id, True, identifier_type="id"):
        raise DeployError(f"{deployment.name}: NiFi did not start process group {pg_id}")


def undeploy(nifi: NiFiAccess, deployment: Deployment) -> None:
    """Stop the group, drop its queued FlowFiles, remove it and its parameter context."""
    connect(nifi)
    try:
        group = nipyapi.canvas.get_process_group(deployment.process_group_id, "id")
        if group is not None:
            nipyapi.canvas.schedule_process_group(group.id, False, identifier_type="id")
            nipyapi.canvas.schedule_all_controllers(group.id, False)
            nipyapi.canvas.delete_process_group(group, force=True)
        nipyapi.parameters.delete_parameter_context(deployment.parameter_context_id, identifier_type="id")
    except (nipyapi.nifi.rest.ApiException, ValueError) as err:
        raise DeployError(f"removing {deployment.name} from {nifi.url} failed: {err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nifi.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("flow", help="flow name under nifi/flows (without .json) or a path to a definition")
    parser.add_argument("--name", help="process group and parameter context name (default: the flow name)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--no-start", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.flow) if args.flow.endswith(".json") else flow_path(args.flow)
    params = dict(p.split("=", 1) for p in args.param)
    try:
        deployment = deploy(platform_access(get_settings()), path, name=args.name or path.stem, parameters=params,
                            start=not args.no_start)
    except DeployError as err:
        print(f"deploy: {err}", file=sys.stderr)
        return 1
    print(json.dumps(deployment.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
