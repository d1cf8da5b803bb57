"""`civicq-ops watch`: checks on their own intervals, alerts, history and a metrics endpoint."""
