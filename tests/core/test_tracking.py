"""aip.tracking.Tracker: steps.jsonl always valid JSON, resumed runs continue cleanly, TensorBoard on request."""

import json
import math

import pytest

from aip.errors import RecipeError
from aip.recipe import load
from aip.tracking import Tracker, read_steps


def test_steps_are_json_lines_with_non_finite_as_null(tmp_path):
    with Tracker(tmp_path) as t:
        t.log_step(4, {"loss": 1.5, "lr": 1e-3, "samples_per_s": 100.0, "data_share": 0.25})
        t.log_step(8, {"loss": math.nan, "lr": math.inf})
        t.log_eval(8, {"top1": 50.0, "top5": 90.0})
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # strict JSON: NaN would not parse in other readers
    assert "NaN" not in lines[1] and "Infinity" not in lines[1]
    assert rows == [{"step": 4, "loss": 1.5, "lr": 1e-3, "samples_per_s": 100.0, "data_share": 0.25},
                    {"step": 8, "loss": None, "lr": None}, {"step": 8, "eval": {"top1": 50.0, "top5": 90.0}}]


def test_resume_drops_rows_past_the_checkpoint(tmp_path):
    with Tracker(tmp_path) as t:
        for step in (4, 8, 12):
            t.log_step(step, {"loss": float(step)})
        t.log_eval(8, {"top1": 10.0})
    (tmp_path / "steps.jsonl").open("a").write('{"step": 16, "lo')  # a crash mid-line
    with Tracker(tmp_path, start_step=8) as t:
        t.log_step(12, {"loss": 0.5})
    rows = read_steps(tmp_path / "steps.jsonl")
    assert [(r["step"], r.get("loss")) for r in rows] == [(4, 4.0), (8, 8.0), (8, None), (12, 0.5)]


def test_disabled_tracker_writes_nothing(tmp_path):
    t = Tracker(tmp_path, enabled=False, backends=["tensorboard"])
    t.log_step(1, {"loss": 1.0})
    t.close()
    assert not any(tmp_path.iterdir())


def test_tensorboard_backend_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Tracker(tmp_path, backends=["tensorboard"]) as t:
        t.log_step(4, {"loss": 2.0})
        t.log_step(8, {"loss": 1.0})
        t.log_eval(8, {"top1": 42.0})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("train/loss")] == [(4, 2.0), (8, 1.0)]
    assert events.Scalars("eval/top1")[0].value == 42.0


def test_recipe_key_train_log(tiny_recipe):
    assert load(tiny_recipe).train.log == []
    assert load(tiny_recipe, ["train.log=['tensorboard']"]).train.log == ["tensorboard"]
    assert load(tiny_recipe, ["train.log=['wandb', 'mlflow', 'csv']"]).train.log == ["wandb", "mlflow", "csv"]
    with pytest.raises(RecipeError, match="train.log"):
        load(tiny_recipe, ["train.log=['neptune']"])
