"""Schema: Model → SQLAlchemy tables; plan the difference with the live database; apply it."""

from engine.runtime.schema.apply import apply_plan
from engine.runtime.schema.plan import Plan, PlanError, plan_schema
from engine.runtime.schema.tables import Schema, build_schema

__all__ = ["Plan", "PlanError", "Schema", "apply_plan", "build_schema", "plan_schema"]
