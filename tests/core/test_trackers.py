"""The trackers of train.log (aip.trackers), each read back through its own client, offline: TensorBoard's event
files, wandb's offline run file, an MLflow file store, scalars.csv. A resume logs no step twice; a missing client
is one line naming the pip command. (A run's wiring, through a resume: tests/core/test_e2e.py.)"""

from __future__ import annotations

import csv
import json
import struct
import sys
from pathlib import Path

import pytest
from PIL import Image

from aip.errors import AipError
from aip.rundir import RunDir
from aip.tracking import Tracker, flatten
from tests.conftest import one_line

HPARAMS = flatten({"train": {"lr": 0.1, "milestones": [0.5, 0.75], "log": ["csv"]}, "student": {"arch": "cnn"},
                   "source": {"uri": "x" * 700}})


def confusion_png(tmp_path: Path) -> Path:
    path = tmp_path / "confusion-in.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    return path


def first_attempt_then_resume(run_dir: Path, backends: list[str], *, image: Path | None = None) -> None:
    """Steps 4, 8 (an evaluation at 8), 12 logged; the run resumes from its checkpoint at step 8 and logs 12 and
    16 again (12 a second time), evaluates at 16 and finishes."""
    with Tracker(run_dir, backends=backends, hparams=HPARAMS, name="tiny") as t:
        for step in (4, 8, 12):
            t.log_step(step, {"loss": 1.0 / step, "lr": 0.1})
            if step == 8:
                t.log_eval(8, {"top1": 40.0, "top5": 90.0}, train_loss_epoch=0.2)
    with Tracker(run_dir, backends=backends, start_step=8, hparams=HPARAMS, name="tiny") as t:
        for step in (12, 16):
            t.log_step(step, {"loss": 2.0 / step, "lr": 0.05})
        t.log_eval(16, {"top1": 60.0, "top5": 95.0}, train_loss_epoch=0.1)
        t.finish({"top1": 61.0, "top5": 96.0, "views": 1}, step=16, image=image)


def test_tensorboard_gets_scalars_hparams_and_the_confusion_image_once_per_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    first_attempt_then_resume(tmp_path, ["tensorboard"], image=confusion_png(tmp_path))
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    loss = events.Scalars("train/loss")  # step 12 of the first attempt was purged, the resumed one kept
    assert [s.step for s in loss] == [4, 8, 12, 16]
    assert [s.value for s in loss] == pytest.approx([0.25, 0.125, 2 / 12, 2 / 16])
    assert [s.value for s in events.Scalars("eval/top1")] == [40.0, 60.0]
    assert [s.value for s in events.Scalars("train/epoch_loss")] == pytest.approx([0.2, 0.1])
    assert "eval/loss" not in events.Tags()["scalars"]  # the training loss is not called a test loss
    assert events.Scalars("final/top1")[0].value == 61.0
    (image,) = events.Images("confusion")
    assert (image.width, image.height) == (40, 30)
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["train.lr"].number_value == 0.1 and hparams["student.arch"].string_value == "cnn"
    assert json.loads(hparams["train.milestones"].string_value) == [0.5, 0.75]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["final/top1", "final/top5", "final/views"]


def _wandb_records(run_file: Path) -> list:
    """The records of a wandb offline ``run-ID.wandb`` file, parsed with wandb's own protobuf ``Record``. The
    client ships no reader of its own any more; the file is a LevelDB-style log (a 7-byte header, then 32 KiB
    blocks of chunks, each with a 7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, parts = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            records.append(wandb_internal_pb2.Record.FromString(parts))
            parts = b""
    return records


def test_wandb_offline_run_holds_the_recipe_metrics_and_image_and_resumes_its_id(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for key in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    first_attempt_then_resume(tmp_path, ["wandb"], image=confusion_png(tmp_path))
    run_id = json.loads((tmp_path / RunDir.TRACKER_IDS).read_text())["wandb"]["id"]
    runs = sorted((tmp_path / RunDir.WANDB).glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 2  # the first attempt and the resumed one: the same wandb run id
    records = [r for run in runs for r in _wandb_records(run / f"run-{run_id}.wandb")]
    (info,) = {(r.run.project, r.run.display_name) for r in records if r.WhichOneof("record_type") == "run"}
    assert info == ("aip", "tiny")
    config = {u.key: json.loads(u.value_json) for r in records if r.WhichOneof("record_type") in ("run", "config")
              for u in (r.run.config.update if r.HasField("run") else r.config.update)}
    assert config["train.lr"] == 0.1 and config["train.milestones"] == [0.5, 0.75]
    history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item} for r in records
               if r.WhichOneof("record_type") == "history"]
    # the resumed attempt skips step 12, which the first one logged
    assert [json.loads(h["train/loss"]) for h in history if "train/loss" in h] == [0.25, 0.125, 1 / 12, 2 / 16]
    assert "eval/loss" not in {k for h in history for k in h} and any("train/epoch_loss" in h for h in history)
    assert any(k.startswith("confusion/") for h in history for k in h)  # a wandb.Image's fields
    summary = {u.key or "/".join(u.nested_key): json.loads(u.value_json) for r in records
               if r.WhichOneof("record_type") == "summary" for u in r.summary.update}
    assert summary["final/top1"] == 61.0
    assert list(runs[-1].glob("files/media/images/confusion_16_*.png"))


def test_mlflow_file_store_gets_params_metrics_and_artifact_without_duplicate_steps(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores for those who ask
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first_attempt_then_resume(run_dir, ["mlflow"], image=confusion_png(tmp_path))
    saved = json.loads((run_dir / RunDir.TRACKER_IDS).read_text())["mlflow"]
    client = MlflowClient(store)
    run = client.get_run(saved["run_id"])
    assert saved["tracking_uri"] == store and run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert client.get_experiment(run.info.experiment_id).name == "aip"
    assert len(client.search_runs([run.info.experiment_id])) == 1  # the resume continued the same run
    params = run.data.params
    assert params["train.lr"] == "0.1" and params["train.milestones"] == "[0.5, 0.75]"
    assert len(params["source.uri"]) == 500 and params["source.uri"].endswith("...")  # MLflow's value limit
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [4, 8, 12, 16]  # step 12 of the first attempt is not repeated
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/top1")] == [8, 16]
    assert "eval/loss" not in run.data.metrics and run.data.metrics["train/epoch_loss"] == pytest.approx(0.1)
    assert run.data.metrics["final/top1"] == 61.0
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["confusion-in.png"]


def test_an_mlflow_store_that_cannot_be_opened_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # MLflow 3 refuses a file store without it
    with pytest.raises(AipError) as e:
        Tracker(tmp_path, backends=["mlflow"])
    one_line(e, "MLflow could not open the tracking store file:", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")


def test_csv_rows_read_back_and_a_resume_drops_the_rows_past_it(tmp_path):
    first_attempt_then_resume(tmp_path, ["csv"])
    with Tracker(tmp_path, backends=["csv"], start_step=16) as t:  # the finished run run again: nothing to do
        t.finish({"top1": 61.0}, step=16)
    with (tmp_path / RunDir.SCALARS_CSV).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train/loss"]) for r in rows if r["train/loss"]] == \
        [("4", "0.25"), ("8", "0.125"), ("12", str(2 / 12)), ("16", "0.125")]
    evals = [r for r in rows if r["eval/top1"]]
    assert [(r["step"], r["eval/top1"], r["train/epoch_loss"]) for r in evals] == [("8", "40.0", "0.2"),
                                                                                  ("16", "60.0", "0.1")]
    assert [r["final/top1"] for r in rows if r["final/top1"]] == ["61.0"] and "eval/loss" not in rows[0]


@pytest.mark.parametrize(("backend", "module", "extra"), [("tensorboard", "torch.utils.tensorboard", "tensorboard"),
                                                          ("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow")])
def test_a_missing_client_is_one_line_naming_the_pip_command(tmp_path, monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(AipError) as e:
        Tracker(tmp_path, backends=[backend])
    one_line(e, f"train.log = ['{backend}'] needs the {backend} package", f"pip install 'aip[{extra}]'")
    with pytest.raises(AipError, match="unknown tracking backend 'neptune'"):
        Tracker(tmp_path, backends=["neptune"])


def test_curves_draw_the_steps_raw_and_smoothed_the_lr_and_the_evaluations_against_views(tmp_path, monkeypatch):
    from aip import plot

    drawn = []
    monkeypatch.setattr(plot, "save_figure", lambda fig, path, **kwargs: drawn.append(fig) or path)
    steps = [{"step": s, "loss": 2.0 / s, "lr": 0.1 / s} for s in (4, 8, 12)] + [{"step": 8, "eval": {"top1": 40.0}}]
    history = [{"epoch": 1, "step": 8, "train_loss_epoch": 0.3, "top1": 40.0}]
    plot.plot_curves(history, tmp_path / "curves.png", title="tiny", teacher_top1=90.0, steps=steps,
                     views_per_step=64, chance=25.0)
    loss_ax, acc_ax, lr_ax = drawn[0].axes
    raw, smooth = loss_ax.get_lines()
    assert list(raw.get_xdata()) == [256, 512, 768] and list(raw.get_ydata()) == [0.5, 0.25, 2 / 12]
    assert smooth.get_ydata()[0] == 0.5 and smooth.get_ydata()[-1] > 2 / 12  # smoothed, debiased at the start
    assert list(lr_ax.get_lines()[0].get_ydata()) == pytest.approx([0.025, 0.0125, 0.1 / 12])
    assert [list(line.get_ydata()) for line in acc_ax.get_lines()][0] == [40.0]
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "views of the datum seen"
    assert any(line.get_gid() == "chance" for line in acc_ax.get_lines())
    # an older run: no steps.jsonl, its rows call the training epoch's loss "loss"
    plot.plot_curves([{"epoch": 1, "step": 8, "loss": 0.3, "top1": 40.0}], tmp_path / "old.png", title="old")
    assert list(drawn[1].axes[0].get_lines()[0].get_ydata()) == [0.3]
    assert drawn[1].axes[0].get_xlabel() == "optimiser step"


def test_an_older_run_that_called_the_epoch_loss_loss_resumes_under_the_new_name():
    from aip.state import RunState, train_loss_epoch

    old = {"step": 8, "history": [{"epoch": 1, "step": 8, "loss": 0.3, "lr": 0.1, "top1": 40.0, "seconds": 1.0}]}
    state = RunState.from_dict(old)  # a last.pt written before the rename
    assert state.history == [{"epoch": 1, "step": 8, "train_loss_epoch": 0.3, "lr": 0.1, "top1": 40.0,
                              "seconds": 1.0}]
    state.record({"epoch": 2, "step": 16, "train_loss_epoch": 0.2, "lr": 0.05, "top1": 50.0, "seconds": 2.0})
    assert state.final == state.best == {"epoch": 2, "top1": 50.0}  # a training loss is no evaluation metric
    assert train_loss_epoch({"loss": 0.3}) == 0.3 == train_loss_epoch({"train_loss_epoch": 0.3})
