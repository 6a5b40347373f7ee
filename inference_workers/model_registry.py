"""A Delta-backed model registry (delta-rs): one row per model version, weights in the object store.

Table ``<lake>/registry/models``: name, version, stage (``None`` / ``Staging`` / ``Production`` /
``Archived``), weights URI and SHA-256, the :class:`ModelSpec` the weights expect, the training
configuration and the metrics (validation at training time, test after ``radlake model evaluate``).
Versions only grow; promoting a version to Production archives the previous Production version.
Loading verifies the weights against the registered SHA-256 before torch sees them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import pyarrow as pa
import torch
from deltalake import DeltaTable, write_deltalake

from inference_workers.errors import ModelRegistryError
from inference_workers.network import NoduleNet3D
from inference_workers.pipeline import ModelSpec
from platform_layer.object_store import ObjectStore, ObjectStoreError
from platform_layer.settings import Settings

STAGES = ("None", "Staging", "Production", "Archived")

SCHEMA = pa.schema([
    ("name", pa.string()),
    ("version", pa.int64()),
    ("stage", pa.string()),
    ("weights_uri", pa.string()),
    ("weights_sha256", pa.string()),
    ("spec_json", pa.string()),
    ("training_json", pa.string()),
    ("metrics_json", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: int
    stage: str
    weights_uri: str
    weights_sha256: str
    spec: ModelSpec
    training: dict
    metrics: dict

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def _spec_from_json(text: str) -> ModelSpec:
    raw = json.loads(text)
    raw["hu_window"] = tuple(raw["hu_window"])
    return ModelSpec(**raw)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class ModelRegistry:
    def __init__(self, table_uri: str, store: ObjectStore) -> None:
        self.table_uri = table_uri
        self.store = store

    def _rows(self) -> list[dict]:

        if not DeltaTable.is_deltatable(self.table_uri):
            return []
        return DeltaTable(self.table_uri).to_pyarrow_table().to_pylist()

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        rows = [r for r in self._rows() if name is None or r["name"] == name]
        return [self._model(r) for r in sorted(rows, key=lambda r: (r["name"], r["version"]))]

    @staticmethod
    def _model(row: dict) -> RegisteredModel:
        return RegisteredModel(row["name"], int(row["version"]), row["stage"], row["weights_uri"], row["weights_sha256"],
                               _spec_from_json(row["spec_json"]), json.loads(row["training_json"]),
                               json.loads(row["metrics_json"]))

    def get(self, name: str, version: int | None = None, stage: str | None = None) -> RegisteredModel:
        """A version by number, else the newest version in ``stage``, else the newest version."""
        models = self.list(name)
        if version is not None:
            models = [m for m in models if m.version == version]
        elif stage is not None:
            models = [m for m in models if m.stage.lower() == stage.lower()]
        if not models:
            raise ModelRegistryError(f"no model {name!r} (version={version}, stage={stage}) in {self.table_uri}")
        return models[-1]

    def register(self, name: str, weights: bytes, spec: ModelSpec, training: dict, metrics: dict,
                 stage: str = "None") -> RegisteredModel:

        if stage not in STAGES:
            raise ModelRegistryError(f"unknown stage {stage!r}; one of {STAGES}")
        try:
            stored = self.store.put(weights, prefix=f"models/{name}", suffix=".pt")
        except ObjectStoreError as err:
            raise ModelRegistryError(f"storing the weights of {name} failed: {err}") from err
        version = max((m.version for m in self.list(name)), default=0) + 1
        row = {"name": name, "version": version, "stage": "None", "weights_uri": stored.uri,
               "weights_sha256": stored.sha256, "spec_json": json.dumps(asdict(spec)),
               "training_json": json.dumps(training, sort_keys=True), "metrics_json": json.dumps(metrics, sort_keys=True),
               "created_at": datetime.now(timezone.utc)}
        write_deltalake(self.table_uri, pa.Table.from_pylist([row], schema=SCHEMA), mode="append")
        if stage != "None":
            self.set_stage(name, version, stage)
        return self.get(name, version=version)

    def set_stage(self, name: str, version: int, stage: str) -> RegisteredModel:

        if stage not in STAGES:
            raise ModelRegistryError(f"unknown stage {stage!r}; one of {STAGES}")
        self.get(name, version=version)
        table = DeltaTable(self.table_uri)
        if stage == "Production":
            table.update(new_values={"stage": "Archived"},
                         predicate=f"name = {_quote(name)} AND stage = 'Production' AND version <> {int(version)}")
        table.update(new_values={"stage": stage}, predicate=f"name = {_quote(name)} AND version = {int(version)}")
        return self.get(name, version=version)

    def record_metrics(self, name: str, version: int, metrics: dict) -> RegisteredModel:

        merged = {**self.get(name, version=version).metrics, **metrics}
        DeltaTable(self.table_uri).update(new_values={"metrics_json": json.dumps(merged, sort_keys=True)},
                                          predicate=f"name = {_quote(name)} AND version = {int(version)}")
        return self.get(name, version=version)

    def load(self, model: RegisteredModel, device: torch.device | str = "cpu") -> NoduleNet3D:
        """The network with the registered weights, verified against their SHA-256, in eval mode."""
        try:
            weights = self.store.get(model.weights_uri, expected_sha256=model.weights_sha256)
        except ObjectStoreError as err:
            raise ModelRegistryError(f"weights of {model.label} unusable: {err}") from err
        return network_from_bytes(weights, model.spec, device)


def network_from_bytes(weights: bytes, spec: ModelSpec, device: torch.device | str = "cpu") -> NoduleNet3D:
    net = NoduleNet3D(spec.width)
    net.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
    return net.to(device).eval()


def network_to_bytes(net: NoduleNet3D) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buffer)
    return buffer.getvalue()


def stack_registry(settings: Settings) -> ModelRegistry:
    """The installation's model registry: the Delta table ``<lake>/registry/models``, weights in the object store."""
    return ModelRegistry(f"{settings.resolved_lake_uri}/registry/models", ObjectStore(settings.resolved_object_store_uri))


def json_safe(value):
    """Metrics as the registry stores them: NaN (an undefined metric) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
