"""MonitorCallback: mode/direction rules, min_delta, NaN."""
import math

import pytest

from kerasckpt.callbacks.monitor import MonitorCallback, direction_from_metrics, direction_from_name


class Container:
    def __init__(self, metrics):
        self.name, self.metrics = "compile_metrics", metrics


def test_direction_from_metrics_reads_loss_and_metric_directions(fake_model, fake_metric):
    model = fake_model(metrics=[Container([fake_metric("auc", "up"), fake_metric("mse", "down")]),
                                fake_metric("mean")])
    assert direction_from_metrics(model, "val_loss") == "down"
    assert direction_from_metrics(model, "auc") == "up"
    assert direction_from_metrics(model, "val_mse") == "down"
    assert direction_from_metrics(model, "val_f1") is None
    assert direction_from_metrics(model, "mean") is None  # a metric without a direction says nothing
    assert direction_from_metrics(None, "loss") == "down"


def test_direction_from_name_is_the_older_checkpoint_rule():
    assert direction_from_name("val_acc") == "up" and direction_from_name("fmeasure") == "up"
    assert direction_from_name("val_loss") == "down" and direction_from_name("auc") == "down"


@pytest.mark.parametrize("mode, current, reference, expected", [
    ("min", 0.5, 1.0, True), ("min", 0.95, 1.0, False), ("max", 1.2, 1.0, True), ("max", 1.05, 1.0, False),
    ("min", 0.5, None, True), ("min", math.nan, None, False), ("max", math.nan, 1.0, False)])
def test_is_improvement_with_min_delta(mode, current, reference, expected):
    cb = MonitorCallback(monitor="x", mode=mode, min_delta=-0.1)  # the sign of min_delta is ignored
    assert cb.min_delta == 0.1
    assert cb._is_improvement(current, reference) is expected


def test_subclass_can_override_the_auto_rule(fake_model):
    class NameRule(MonitorCallback):
        def _auto_direction(self):
            return direction_from_name(self.monitor)

    cb = NameRule(monitor="val_acc")
    cb.set_model(fake_model())
    cb._set_monitor_op()
    assert cb._is_improvement(0.9, 0.8)


def test_unknown_mode_warning_points_at_the_caller():
    message = "MonitorCallback mode 'up' is unknown.*Pass mode='auto', 'min' or 'max'"
    with pytest.warns(UserWarning, match=message) as rec:
        MonitorCallback(mode="up")
    assert rec[0].filename == __file__
