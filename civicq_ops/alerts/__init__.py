"""Alert rules over findings (Prometheus semantics: pending, firing, resolved), their state and notifiers."""
