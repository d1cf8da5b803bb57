"""Targets: where civicq-ops connects, and the local cluster it can run itself."""
