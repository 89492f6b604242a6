"""Runtime services: database, schema evolution, records, users, audit."""
