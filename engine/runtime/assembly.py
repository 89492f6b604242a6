"""Assembling the services: the records service with the hooks every write runs.

`records` knows nothing of what hooks into its writes (the import contract in pyproject.toml
forbids it); the app, the CLI and anything else that serves users build their records
service here, so every one of them keeps rollups exact and runs flows.
"""

from __future__ import annotations

from sqlalchemy import Engine

from engine.metadata.model import Model
from engine.runtime.files.purge import install_attachments
from engine.runtime.files.store import DiskStore, FileStore
from engine.runtime.flows.hook import install_flows
from engine.runtime.idempotency import install_idempotency
from engine.runtime.imports.duplicates import install_duplicates
from engine.runtime.imports.merge import install_merge_undo
from engine.runtime.records import Records
from engine.runtime.records.service import Clock
from engine.runtime.rollups.hook import install_rollups
from engine.runtime.rollups.rules import install_parent_rules


def records_service(engine: Engine, model: Model, clock: Clock | None = None,
                    files: FileStore | None = None) -> Records:
    """The records service of `model` on `engine`, its hooks registered. `files`: where
    attachments are stored (by default a DiskStore under data/files)."""
    records = Records(engine, model) if clock is None else Records(engine, model, clock)
    install_idempotency(records)  # first: a write of a request whose key was taken over stops
    install_merge_undo(records)  # before rollups: a restore's undone merge is rolled up
    install_rollups(records)
    install_parent_rules(records)
    install_flows(records)  # after rollups: a flow's rules read the rollups' new values
    install_attachments(records, DiskStore() if files is None else files)
    install_duplicates(records)  # duplicate rules' match keys (engine/runtime/imports/)
    return records
