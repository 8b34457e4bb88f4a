"""CSVLogger: Keras's columns and format (byte-for-byte against Keras), flushing, append mode."""
import numpy as np
import pytest

from kerasckpt.callbacks import CallbackList, CSVLogger


class _Model:
    stop_training = False
    history = None


def write(logger, epoch_logs):
    cbs = CallbackList([logger], model=_Model())
    cbs.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cbs.on_epoch_end(epoch, logs)
    cbs.on_train_end()


def test_columns_rows_and_val_placeholders(tmp_path):
    path = tmp_path / "log.csv"
    write(CSVLogger(path), [{"loss": 0.5, "accuracy": 0.25}, {"loss": 0.25, "accuracy": 0.5}])
    assert path.read_bytes() == (b"epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                                 b"0,0.25,0.5,NA,NA\r\n1,0.5,0.25,NA,NA\r\n")


def test_separator_and_iterable_values(tmp_path):
    path = tmp_path / "log.tsv"
    write(CSVLogger(str(path), separator="\t"), [{"loss": 1.0, "val_loss": 2.0, "vec": np.array([1, 2])}])
    assert path.read_bytes() == b'epoch\tloss\tval_loss\tvec\r\n0\t1.0\t2.0\t"""[1, 2]"""\r\n'


def test_each_row_is_flushed(tmp_path):
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    cbs = CallbackList([logger], model=_Model())
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0"]
    cbs.on_train_end()


def test_append_mode_continues_without_a_second_header(tmp_path):
    path = tmp_path / "log.csv"
    write(CSVLogger(path), [{"loss": 1.0, "val_loss": 2.0}])
    write(CSVLogger(path, append=True), [{"loss": 0.5, "val_loss": 1.5}])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0", "0,0.5,1.5"]
    write(CSVLogger(path), [{"loss": 0.25, "val_loss": 1.0}])  # append=False overwrites
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,0.25,1.0"]


def test_append_follows_the_existing_header(tmp_path):
    path = tmp_path / "log.csv"
    write(CSVLogger(path), [{"loss": 1.0, "val_loss": 2.0}])
    with pytest.warns(UserWarning, match=r"header has no column for \['learning_rate'\]"):
        write(CSVLogger(path, append=True), [{"learning_rate": 0.1, "loss": 0.5}])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0", "0,0.5,NA"]


def test_append_to_missing_or_empty_file_writes_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("")
    write(CSVLogger(path, append=True), [{"loss": 1.0}])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,NA"]


def test_matches_keras_byte_for_byte(tmp_path, keras_callbacks):
    logs = [{"loss": 0.123456789, "accuracy": 1.0, "vec": [1.5, 2]}, {"loss": float("nan"), "accuracy": 0.0}]
    for name, cls in (("ours.csv", CSVLogger), ("keras.csv", keras_callbacks.CSVLogger)):
        logger = cls(str(tmp_path / name), separator=";")
        logger.set_model(_Model())
        logger.on_train_begin()
        for epoch, entry in enumerate(logs):
            logger.on_epoch_end(epoch, dict(entry))
        logger.on_train_end()
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "keras.csv").read_bytes()


def test_real_fit_writes_one_row_per_epoch(tmp_path, real_fit):
    path = tmp_path / "fit.csv"
    model, history = real_fit([CSVLogger(path)], epochs=2)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,mae,val_loss,val_mae"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ["0", "1"]
    assert [float(r[1]) for r in rows] == history.history["loss"]
    assert [float(r[3]) for r in rows] == history.history["val_loss"]
