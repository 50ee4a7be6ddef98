"""Typed endpoint methods, one namespace per Console API group.

Every namespace is built on one generic base (:mod:`._base`): a :class:`Collection`
declares its :class:`~bulkops.api.paths.Route` and model and gets list, get, create,
update, patch and delete; reusable pieces add what the API offers under an object
(overrides, rules, versions, archive/unarchive, enable/disable, alerts). A module
holds only its namespace's declaration and its genuinely special endpoints. The client
creates one instance of each (``client.gates``, ``client.dynamic_configs``, …).

Each namespace reads in two layers: the wire JSON as sent (``items``, ``fetch``,
``read``), which is what jobs plan from, and typed models built from that same data.
"""

from __future__ import annotations

from ._base import Collection, Resource
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
    "Collection",
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
]
