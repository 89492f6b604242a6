"""Explaining one user's access to one record: the records side.

Reads the record as the asker may read it (or from the recycle bin) and both department
paths, then leaves the reasoning to the policy (engine.runtime.access.explain), which gets
them as plain values: access does not import records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.messages import msg
from engine.runtime.access.actor import Actor
from engine.runtime.access.explain import RecordFacts, explain_record, explaining_reader
from engine.runtime.errors import NotFound
from engine.runtime.org import department_path

if TYPE_CHECKING:
    from engine.runtime.records.service import Records


def explain_access(records: Records, asker: Actor, subject: Actor, entity: str,
                   record_id: int) -> dict[str, Any]:
    """The verdict and its reason for every action and every field of one record.

    Administrators may ask about anyone; others only about themselves, and only about a
    record they may read (NotFound otherwise, as reading it would be).
    """
    policy = records.policy
    reader = explaining_reader(policy, asker, subject)
    c = records.compiled(entity)
    if reader is asker:
        policy.require(asker, c.entity, "read")
    with records.engine.connect() as conn:
        try:
            row = records.fetch(conn, reader, c, record_id)
            deleted = False
        except NotFound:
            try:
                row = records.fetch(conn, reader, c, record_id, deleted=True)
            except NotFound:
                raise NotFound(msg("no %(entity)s %(id)s", entity=entity, id=record_id)) from None
            deleted = True
        facts = RecordFacts(record_id=row["id"], owner_id=row["owner_id"],
                            in_recycle_bin=deleted,
                            user_path=department_path(conn, records, subject.department_id),
                            record_path=department_path(conn, records, row["department_id"]))
        return explain_record(conn, policy, subject, c.entity, c.table, facts)
