"""Typed endpoint methods, one namespace per Console API group.

Each module defines :class:`Resource` subclasses; the client creates one instance
of each (``client.gates``, ``client.dynamic_configs``, …). Methods build paths with
:func:`encode_id`, send bodies through :func:`bulkops.models.dump`, and return
models or plain data.
"""

from __future__ import annotations

from ._base import Resource, encode_id
from .admin import Alerts, Keys
from .dynamic_configs import DynamicConfigs
from .experiments import Experiments, WarehouseNative
from .gates import Gates
from .holdouts import Holdouts
from .ingestions import Ingestions
from .layers import Layers
from .metadata import AuditLogs, Environments, ProjectInfo, Tags, TargetApps, UnitIdTypes
from .segments import Segments
from .users import Teams, Users

__all__ = [
    "Alerts",
    "AuditLogs",
    "DynamicConfigs",
    "Environments",
    "Experiments",
    "Gates",
    "Holdouts",
    "Ingestions",
    "Keys",
    "Layers",
    "ProjectInfo",
    "Resource",
    "Segments",
    "Tags",
    "TargetApps",
    "Teams",
    "UnitIdTypes",
    "Users",
    "WarehouseNative",
    "encode_id",
]
