"""Remediation: policies turn findings into a plan of guarded actions; apply runs a saved plan."""
