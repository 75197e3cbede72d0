"""The client against ``proto-docs/openapi.json``: every operation covered, every type
shaped like its schema. These tests need no server."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from conftest import OPENAPI

import flowlab
from flowlab import settings, types
from flowlab.client import Campaign, Client
from flowlab.operations import OPERATIONS

DOCUMENT: dict[str, Any] = json.loads(OPENAPI.read_text())
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

#: Each schema of the document and the class of the client that holds it.
SCHEMA_CLASSES: dict[str, type] = {
    "BestCandidate": types.BestCandidate,
    "Campaign": types.CampaignInfo,
    "CampaignDetail": types.CampaignDetail,
    "CampaignStats": types.CampaignStats,
    "CandidatePage": types.CandidatePage,
    "GfnConfig": settings.ModelSettings,
    "Health": types.Health,
    "LabelItem": types.Label,
    "LabelsOutcome": types.LabelsOutcome,
    "ListedCandidate": types.ListedCandidate,
    "ModelDetail": types.ModelDetail,
    "ModelOverview": types.ModelOverview,
    "ModelSample": types.ModelSample,
    "NewCampaign": types.CampaignInfo,
    "ProposedCandidate": types.ProposedCandidate,
    "ProspectiveQuality": types.ProspectiveQuality,
    "ProspectiveSummary": types.ProspectiveSummary,
    "ProxyEstimate": types.ProxyEstimate,
    "ProxyQuality": types.ProxyQuality,
    "ProxySpec": settings.ProxySettings,
    "RewardSpec": settings.RewardSettings,
    "Round": types.Round,
    "RoundCandidate": types.RoundCandidate,
    "RoundDetail": types.RoundDetail,
    "RoundFigures": types.RoundFigures,
    "RoundSpec": settings.RoundSettings,
    "StoredLabel": types.StoredLabel,
    "TrainingMix": settings.TrainingMix,
    "TrainingRun": types.TrainingRun,
    "TrainingSpec": settings.TrainingSettings,
}

#: Schemas that are not a class of their own, and why.
NOT_CLASSES = {
    "CampaignList": "Client.campaigns answers the list itself",
    "CampaignSpec": "the settings part of Campaign, held by CampaignInfo",
    "CandidateValue": "the Value alias",
    "ErrorBody": "ApiError",
    "ErrorDetail": "ApiError",
    "LabelsRequest": "Client.post_labels takes the list of Label",
    "RoundRequest": "the arguments of Client.create_round",
    "SpaceSpec": "Sequence, Grid and Set",
    "SignInForm": "the dashboard's sign-in form, filled in by a browser",
}

#: Enumerations of the document and the Literal types of the client.
ENUMS: dict[str, Any] = {
    "Acquisition": settings.Acquisition,
    "BackwardPolicy": settings.BackwardPolicy,
    "CandidateSource": types.CandidateSource,
    "CandidateStatus": types.CandidateStatus,
    "ErrorCode": types.ErrorCode,
    "FeatureSet": settings.FeatureSet,
    "ModelStatus": types.ModelStatus,
    "Objective": settings.Objective,
    "RunStatus": types.RunStatus,
    "Selection": settings.Selection,
    "Transform": settings.Transform,
}

SPACE_CLASSES = {"sequence": flowlab.Sequence, "grid": flowlab.Grid, "set": flowlab.Set}


def document_operations() -> dict[str, tuple[str, str]]:
    """The JSON API's operations: the dashboard's browser pages (marked ``x-flowlab-html``)
    are for people, not for this client."""
    found = {}
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS and not operation.get("x-flowlab-html"):
                found[operation["operationId"]] = (method.upper(), path)
    return found


def test_the_document_marks_the_dashboard_pages() -> None:
    """The filter above must leave something out, or it would hide nothing."""
    pages = [
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and operation.get("x-flowlab-html")
    ]
    assert ("get", "/campaigns/{id}/dashboard") in pages


def test_every_operation_of_the_document_is_covered_by_the_client() -> None:
    documented = document_operations()
    covered = {name: (op.method, op.path) for name, op in OPERATIONS.items()}
    missing = {k: v for k, v in documented.items() if covered.get(k) != v}
    assert not missing, f"operations the client does not cover (or covers differently): {missing}"
    stale = set(covered) - set(documented)
    assert not stale, f"the client maps operations the document no longer has: {stale}"


def test_every_method_of_the_operation_table_exists() -> None:
    owners = {"Client": Client, "Campaign": Campaign}
    for name, operation in OPERATIONS.items():
        for performed_by in operation.performed_by:
            owner, method = performed_by.split(".")
            assert callable(getattr(owners[owner], method, None)), f"{name}: {performed_by}"


def test_every_public_method_of_the_client_is_in_the_operation_table() -> None:
    listed = {m for op in OPERATIONS.values() for m in op.performed_by}
    # Methods that only combine or wrap others, or close the connections.
    local = {"Client.close"}
    for owner in (Client, Campaign):
        for name, member in vars(owner).items():
            if callable(member) and not name.startswith("_"):
                qualified = f"{owner.__name__}.{name}"
                assert qualified in listed | local, f"{qualified} performs no listed operation"


def properties(schema: dict[str, Any]) -> dict[str, Any]:
    """The properties of an object schema, following ``allOf`` and ``$ref``."""
    if "$ref" in schema:
        return properties(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    found: dict[str, Any] = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found.update(properties(part))
    return found


def api_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if not f.metadata.get("client_only")}


def test_every_schema_is_accounted_for() -> None:
    unknown = set(SCHEMAS) - set(SCHEMA_CLASSES) - set(NOT_CLASSES) - set(ENUMS)
    assert not unknown, f"schemas of the document the client has no type for: {unknown}"


@pytest.mark.parametrize("schema", sorted(SCHEMA_CLASSES))
def test_each_class_has_exactly_the_fields_of_its_schema(schema: str) -> None:
    cls = SCHEMA_CLASSES[schema]
    expected = set(properties(SCHEMAS[schema]))
    if schema == "NewCampaign":
        # The campaign as answered adds what the server assigns.
        expected |= {"id", "created_at"}
    assert api_fields(cls) == expected


#: Schemas of answers; the others describe requests (or settings) whose fields are optional.
ANSWER_SCHEMAS = sorted(
    name
    for name, cls in SCHEMA_CLASSES.items()
    if name not in {"NewCampaign", "LabelItem"} and cls.__module__ != settings.__name__
)


@pytest.mark.parametrize("schema", ANSWER_SCHEMAS)
def test_fields_required_by_a_schema_are_required_by_the_decoder(schema: str) -> None:
    """An answer field the document marks required has no default in the class, so an
    answer without it is refused rather than silently read as None."""
    required: set[str] = set()

    def collect(s: dict[str, Any]) -> None:
        if "$ref" in s:
            collect(SCHEMAS[s["$ref"].rsplit("/", 1)[1]])
        required.update(s.get("required", []))
        for part in s.get("allOf", []):
            collect(part)

    collect(SCHEMAS[schema])
    without_default = {
        f.name
        for f in dataclasses.fields(SCHEMA_CLASSES[schema])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert without_default == required


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_each_literal_type_has_exactly_the_values_of_its_enumeration(enum: str) -> None:
    assert set(typing.get_args(ENUMS[enum])) == set(SCHEMAS[enum]["enum"])


@pytest.mark.parametrize("kind", sorted(SPACE_CLASSES))
def test_each_space_class_has_exactly_the_fields_of_its_schema(kind: str) -> None:
    variants = {v["properties"]["type"]["enum"][0]: v for v in SCHEMAS["SpaceSpec"]["oneOf"]}
    assert set(variants) == set(SPACE_CLASSES)
    expected = set(variants[kind]["properties"]) - {"type"}
    assert {f.name for f in dataclasses.fields(SPACE_CLASSES[kind])} == expected


def test_round_request_parameters_are_the_arguments_of_create_round() -> None:
    expected = set(SCHEMAS["RoundRequest"]["properties"])
    arguments = set(typing.get_type_hints(Client.create_round)) - {"return"}
    assert arguments == expected


def test_query_parameters_are_arguments_of_the_client() -> None:
    for operation_id, method in (
        ("list_candidates", Client.list_candidates),
        ("sample_model", Client.sample_model),
    ):
        method_name, path = document_operations()[operation_id]
        parameters = DOCUMENT["paths"][path][method_name.lower()]["parameters"]
        query = {p["name"] for p in parameters if p["in"] == "query"} - {"format"}
        arguments = set(typing.get_type_hints(method)) - {"return"}
        assert query <= arguments, f"{operation_id}: {query - arguments} not passed"
