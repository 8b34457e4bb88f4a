"""The keras.io text examples run as written (only the import and the data changed) and reload their best model."""
import pytest

from test_examples import _run


@pytest.mark.slow
@pytest.mark.parametrize("script, expected", [
    ("text_classification_from_scratch.py", "test accuracy"),
    ("bidirectional_lstm_imdb.py", "Total params: 2,757,761"),
    ("text_classification_with_transformer.py", "Validation sequences"),
])
def test_text_example_trains_and_reloads_its_best_model(script, expected):
    out = _run(script)
    assert "best model reloaded: val_loss" in out
    reloaded, best = out.split("best model reloaded: val_loss ")[1].split(" (best seen ")
    assert float(reloaded) == pytest.approx(float(best.split(")")[0]), abs=1e-5)
    assert expected in out
