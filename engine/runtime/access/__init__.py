"""Access: who is acting, and what they may see and do (roles, scopes, teams, field masks)."""

from engine.runtime.access.actor import SYSTEM, Actor
from engine.runtime.access.policy import AccessPolicy, FieldMask

__all__ = ["SYSTEM", "AccessPolicy", "Actor", "FieldMask"]
