import pytest

from helpers import ModelServer, make_tiny_tree


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test decodes into a cache of its own session, never the user's."""
    monkeypatch.setenv("HW3_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A small tree in the assignment's layout: face/{train,test} and digits/<domain>/{train,test}.

    Shared by the whole session: treat it as read-only (copy it to change it).
    """
    return make_tiny_tree(tmp_path_factory.mktemp("hw3_data"))


@pytest.fixture
def model_server(tmp_path):
    """A loopback HTTP server over an empty folder; put files in ``server.directory``."""
    directory = tmp_path / "served"
    directory.mkdir()
    server = ModelServer(directory)
    yield server
    server.stop()
