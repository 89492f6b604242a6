"""Flows: stage rules, triggers, timers, the outbox and its deliveries (issue 13)."""
