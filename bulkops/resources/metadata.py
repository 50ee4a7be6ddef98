"""Resource namespaces: metadata."""

from __future__ import annotations

from ._base import Resource

__all__ = ["AuditLogs", "Environments", "ProjectInfo", "Tags", "TargetApps", "UnitIdTypes"]


class Tags(Resource):
    """``/tags``."""


class TargetApps(Resource):
    """``/target_app``."""


class UnitIdTypes(Resource):
    """``/unit_id_types``."""


class Environments(Resource):
    """``/environments``."""


class ProjectInfo(Resource):
    """``/project``."""


class AuditLogs(Resource):
    """``/audit_logs``."""
