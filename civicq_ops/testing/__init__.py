"""Offline tests of checks (and later policies and alerts): rows in, findings out, no database."""
