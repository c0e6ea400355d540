import os

# The suite runs on every core, one pytest-xdist worker per core (pyproject.toml): each worker
# and the scripts it starts then use one thread, as side-by-side trainings do (hw3/jobs.py).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch
from torch import nn

import fidelity
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


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory):
    """A randomly initialised state dict in the shapes of torch-fidelity's InceptionV3, saved to a file.

    torch-fidelity's class always loads weights in its constructor, so a subclass
    skips that step; He initialisation keeps the activations from vanishing
    through the 90-odd layers, so the features differ between images.
    """
    from torch_fidelity import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.05)
    path = folder / fidelity.INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return path


def pytest_collection_modifyitems(items):
    """The slow whole-command runs first: pytest-xdist hands them out in turn, so the workers end together."""
    items.sort(key=lambda item: item.get_closest_marker("whole_run") is None)
