"""Why did this record change? Its automation runs and its stage history, as one reader
may see them: only a reader who may read the record gets them (NotFound otherwise, as for
the record itself), and the values of fields hidden from them are left out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.runtime.access import Actor
from engine.runtime.flows.runs import runs_of
from engine.runtime.flows.stages import stage_history
from engine.runtime.records.opened import open_record
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE, STAGE_HISTORY_TABLE
from engine.runtime.values import to_json

if TYPE_CHECKING:
    from engine.runtime.records import Records


def automation(records: Records, actor: Actor, entity: str,
               record_id: int) -> dict[str, Any]:
    """{"runs": newest first, "stages": oldest first} of the record, for `actor`."""
    with open_record(records, actor, entity, record_id) as opened:
        hidden = records.policy.hidden_fields(actor, opened.c.entity)
        runs = runs_of(opened.conn, records.schema.table(AUTOMATION_RUN_TABLE), records.users,
                       entity, record_id, hidden)
        stages = [] if not any(f.stages and f.stages.field not in hidden
                               and f.entity == entity for f in records.model.flows) \
            else [{k: to_json(v) for k, v in row.items() if k not in ("entity", "record_id")}
                  for row in stage_history(opened.conn,
                                           records.schema.table(STAGE_HISTORY_TABLE),
                                           entity, record_id)
                  if row["field"] not in hidden]
    return {"runs": runs, "stages": stages}
