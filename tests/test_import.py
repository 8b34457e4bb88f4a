"""`import kerasckpt` loads what training needs and nothing else; every public name still resolves.

Each check runs in a fresh interpreter (this test process has long imported everything).
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# What a script that only trains never needs: the file formats and their machinery, the CLI, the progress
# bar, remote storage, and the thread and process pools of the data pipeline and of background saves.
NOT_FOR_TRAINING = ("h5py", "tqdm", "fsspec", "asyncio", "crc32c", "concurrent.futures", "multiprocessing",
                    "multiprocessing.pool", "kerasckpt.cli", "kerasckpt._storage",
                    "kerasckpt._fileio", "kerasckpt._background", "kerasckpt.checkpoint", "kerasckpt.saving.api",
                    "kerasckpt.saving.h5file", "kerasckpt.saving.keras_zip", "kerasckpt.checkpoint.bundle",
                    "kerasckpt.data.workers", "kerasckpt.callbacks.model_checkpoint",
                    "kerasckpt.callbacks.backup_and_restore")


def run(code):
    """Run `code` in a fresh interpreter on this checkout; return what it printed as JSON."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def loaded_by(code):
    """The modules of NOT_FOR_TRAINING that `code` added to sys.modules."""
    return run(f"import json, sys\nbefore = set(sys.modules)\n{code}\n"
               f"print(json.dumps(sorted(m for m in {NOT_FOR_TRAINING!r} if m in sys.modules and m not in before)))")


def test_import_loads_no_file_format_pool_cli_or_progress_bar():
    assert loaded_by("import kerasckpt") == []


def test_training_on_arrays_loads_none_of_them_either():
    assert loaded_by("""
import numpy as np
import kerasckpt
from kerasckpt import layers
model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x, y = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"), np.arange(64) % 3
model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25,
          callbacks=[kerasckpt.callbacks.EarlyStopping(monitor="val_loss")])
model.evaluate(x, y, verbose=0)
model.predict(x, verbose=0)
""") == []


def test_the_first_use_loads_what_is_needed():
    assert {"h5py", "kerasckpt.callbacks.model_checkpoint", "kerasckpt.saving.h5file"} <= set(
        loaded_by("import kerasckpt\nkerasckpt.callbacks.ModelCheckpoint"))
    assert {"kerasckpt.checkpoint.bundle", "kerasckpt._fileio"} <= set(
        loaded_by("import kerasckpt\nkerasckpt.Checkpoint"))
    assert "h5py" in loaded_by("import kerasckpt\nkerasckpt.saving.load_model")
    assert "tqdm" in loaded_by("""
import numpy as np, kerasckpt
model = kerasckpt.Sequential([kerasckpt.Input(shape=(2,)), kerasckpt.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.ones((4, 2)), np.ones(4), verbose=1)  # the progress bar""")


def test_every_public_name_resolves():
    found = run("""
import json, kerasckpt
from kerasckpt import callbacks, checkpoint, models, saving
from kerasckpt.callbacks import BackupAndRestore, CSVLogger, ModelCheckpoint  # from-imports of lazy names
from kerasckpt.saving import load_model, save_model
missing = [f"{m.__name__}.{n}" for m in (kerasckpt, callbacks, checkpoint, models, saving) for n in m.__all__
           if getattr(m, n, None) is None]
undir = [f"{m.__name__}.{n}" for m in (kerasckpt, callbacks, models, saving) for n in m.__all__ if n not in dir(m)]
print(json.dumps([missing, undir, kerasckpt.Checkpoint is checkpoint.Checkpoint,
                  models.load_model is saving.load_model is kerasckpt.saving.api.load_model]))
""")
    assert found == [[], [], True, True]


def test_unknown_names_still_raise_attribute_error():
    assert run("""
import json, kerasckpt
errors = []
for module in (kerasckpt, kerasckpt.callbacks, kerasckpt.saving, kerasckpt.models):
    try:
        module.NoSuchThing
    except AttributeError as exc:
        errors.append(str(exc))
print(json.dumps(errors))
""") == [f"module '{m}' has no attribute 'NoSuchThing'"
         for m in ("kerasckpt", "kerasckpt.callbacks", "kerasckpt.saving", "kerasckpt.models")]


def test_registry_is_complete_without_the_lazy_modules():
    # every class load_model may rebuild is registered by `import kerasckpt` alone
    names = run("""
import json, importlib, kerasckpt
from kerasckpt import _registry
first = _registry.registered_names()
for name in ("kerasckpt.checkpoint", "kerasckpt.saving.api", "kerasckpt.callbacks.model_checkpoint",
             "kerasckpt.callbacks.backup_and_restore", "kerasckpt.callbacks.csv_logger", "kerasckpt.cli",
             "kerasckpt.data.workers"):
    importlib.import_module(name)
print(json.dumps([first, _registry.registered_names()]))
""")
    assert names[0] == names[1] and len(names[0]) > 50


def test_nested_layer_configs_work_before_saving_is_loaded():
    # Bidirectional writes and reads its inner layer through the codec that saving/ installs when it loads
    config = run("""
import json, kerasckpt
from kerasckpt import layers
layer = layers.Bidirectional(layers.LSTM(2))
again = layers.Bidirectional.from_config(layer.get_config())
print(json.dumps([layer.get_config()["layer"]["class_name"], type(again.forward_layer).__name__]))
""")
    assert config == ["LSTM", "LSTM"]


def test_lazy_attributes_load_kerasckpt_modules_only():
    from kerasckpt._lazy import lazy_attributes
    with pytest.raises(ValueError, match=r"outside kerasckpt: \['os'\]"):
        lazy_attributes("kerasckpt.example", {}, {"path": "os"})
    getattr_, _ = lazy_attributes("kerasckpt.example", {}, {"Checkpoint": "kerasckpt.checkpoint"})
    assert getattr_("Checkpoint").__name__ == "Checkpoint"
