"""Reaching an Azure Machine Learning workspace or AI Foundry project: what is needed, what is missing."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ._base import HandoffError, need

ENV = {"subscription_id": "AZURE_SUBSCRIPTION_ID", "resource_group": "AZURE_RESOURCE_GROUP",
       "workspace": "AZUREML_WORKSPACE_NAME"}


def workspace(options, environ: Optional[dict] = None) -> dict:
    """subscription_id, resource_group and workspace from the options, else the environment."""
    environ = os.environ if environ is None else environ
    return {key: getattr(options, key, None) or environ.get(var) for key, var in ENV.items()}


def missing(options, environ: Optional[dict] = None, cwd: Optional[Path] = None) -> list[tuple[str, str]]:
    """What stops a submission before any network call: SDKs, workspace coordinates."""
    problems = []
    try:
        need("azure.ai.ml", "azure.identity")
    except HandoffError as exc:
        problems += exc.problems
    found = workspace(options, environ)
    config_json = (cwd or Path.cwd()) / "config.json"
    for key, value in found.items():
        if not value and not _workspace_config(config_json):
            problems.append((f"--opt {key}", f"is not set: pass --opt {key}=..., export {ENV[key]}, or put the "
                                             "workspace's config.json (Download config.json in the Azure portal) "
                                             "in the current folder"))
    return problems


def _workspace_config(path: Path) -> bool:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"subscription_id", "resource_group", "workspace_name"} <= set(data)


def client(options, environ: Optional[dict] = None):
    """An ``MLClient`` for the workspace, signed in with ``DefaultAzureCredential``."""
    problems = missing(options, environ)
    if problems:
        raise HandoffError(problems)
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    try:
        credential.get_token("https://management.azure.com/.default")
    except Exception as exc:  # noqa: BLE001 - every credential source failed
        raise HandoffError([("credentials", "no Azure credentials found: run `az login`, or set AZURE_CLIENT_ID, "
                                            "AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service principal "
                                            f"({type(exc).__name__})")]) from None
    found = workspace(options, environ)
    if all(found.values()):
        return MLClient(credential, found["subscription_id"], found["resource_group"], found["workspace"])
    return MLClient.from_config(credential=credential)
