"""Every operation of the API and the client methods that perform it.

A test compares this table with ``proto-docs/openapi.json``: an operation added to the
server, or one whose method or path changed, fails it until the client covers it here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    #: ``Class.method`` names of the client performing the operation.
    performed_by: tuple[str, ...]


OPERATIONS: dict[str, Operation] = {
    "healthz": Operation("GET", "/healthz", ("Client.health",)),
    "metrics": Operation("GET", "/metrics", ("Client.metrics",)),
    "list_campaigns": Operation("GET", "/campaigns", ("Client.campaigns",)),
    "create_campaign": Operation("POST", "/campaigns", ("Client.create_campaign",)),
    "get_campaign": Operation(
        "GET",
        "/campaigns/{id}",
        ("Client.get_campaign", "Client.campaign", "Campaign.detail", "Campaign.stats"),
    ),
    "list_candidates": Operation(
        "GET",
        "/campaigns/{id}/candidates",
        (
            "Client.list_candidates",
            "Client.candidates_csv",
            "Campaign.candidates",
            "Campaign.candidates_csv",
        ),
    ),
    "get_model": Operation("GET", "/campaigns/{id}/model", ("Client.get_model", "Campaign.model")),
    "sample_model": Operation(
        "GET", "/campaigns/{id}/model/sample", ("Client.sample_model", "Campaign.sample")
    ),
    "create_labels": Operation(
        "POST",
        "/labels",
        (
            "Client.post_labels",
            "Client.post_labels_csv",
            "Campaign.tell",
            "Campaign.tell_failed",
            "Campaign.label",
            "Campaign.import_labels",
            "Campaign.upload_csv",
        ),
    ),
    "create_round": Operation("POST", "/rounds", ("Client.create_round", "Campaign.ask")),
    "get_round": Operation("GET", "/rounds/{id}", ("Client.get_round", "Campaign.round")),
    "abandon_round": Operation(
        "POST", "/rounds/{id}/abandon", ("Client.abandon_round", "Campaign.abandon")
    ),
}
