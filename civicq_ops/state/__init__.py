"""The state store: history of runs and findings, and the append-only audit of actions."""
