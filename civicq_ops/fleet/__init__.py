"""Fleets: target groups that expand at run time, fleet runs, and workers on a procrastinate queue."""
