"""Bringing data in and keeping it clean: import jobs, column mapping, duplicates, merge.

Everything here writes through the records service's unit of work (engine/runtime/records/
unit.py), so an imported row is checked, audited and rolled up like a form's. Modules:
sources (reading CSV and XLSX files), mapping (columns to fields, values to field types),
keys (records by a key field, references by id, external id or title), jobs (resumable
import jobs), duplicates (matching rules), merge (two records into one).
"""
