"""The suite's own servers leave nothing behind: a PostgreSQL cluster is 0.6-1.2 GB after a run,
and a few hundred runs of clusters left in /tmp filled the CI machine's disk."""

from servers.postgres import start_server


def test_a_stopped_postgresql_cluster_leaves_no_files():
    server = start_server()
    owned = server.owned_dir
    assert owned is not None and (server.data / "PG_VERSION").exists()
    server.stop()
    assert not owned.exists()
