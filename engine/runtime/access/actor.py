"""Who is acting: a signed-in user, or the engine itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """A user as the access policy sees them, or the engine (imports, demo data, migrations)."""

    user_id: int | None
    name: str
    roles: tuple[str, ...] = ()
    department_id: int | None = None

    @property
    def is_system(self) -> bool:
        return self.user_id is None


SYSTEM = Actor(user_id=None, name="system", roles=("admin",))
