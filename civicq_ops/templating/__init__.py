"""Sandboxed Jinja2: templated SQL with bind parameters, and messages for people."""
