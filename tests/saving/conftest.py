"""Fixtures for the saving tests. The root conftest's helpers come through the `kit` fixture
(never `from conftest import ...`: several conftest.py files share that name)."""
import pathlib

import pytest

ROOT_CONFTEST = pathlib.Path(__file__).resolve().parents[1] / "conftest.py"
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
MODEL_KINDS = ("sequential", "functional", "subclass")


@pytest.fixture
def kit(request):
    """tests/conftest.py as a module: make_model(kind), tiny_data(), SubMLP."""
    return request.config.pluginmanager.get_plugin(ROOT_CONFTEST.as_posix())


@pytest.fixture
def data_dir():
    """tests/data: Keras-written fixture files (see make_keras_fixtures.py)."""
    return DATA


@pytest.fixture
def model(kit):
    """A compiled Sequential model trained for one epoch (weights, optimizer slots and all)."""
    model = kit.make_model("sequential")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    return model
