"""The experiment trackers ``train.log`` can name: ``tensorboard``, ``wandb``, ``mlflow`` and ``csv``.

Each backend writes through its tracker's own client, imported only when a recipe asks for it (the clients are
the optional extras ``aip[tensorboard]``, ``aip[wandb]``, ``aip[mlflow]``; ``csv`` needs only the standard
library), and takes its settings from the client's own environment variables (``WANDB_PROJECT``, ``WANDB_MODE``,
``MLFLOW_TRACKING_URI``, ...). They all get the same scalars under the same names (``train/loss``, ``train/lr``,
``eval/top1``, ``train/epoch_loss``, ...) and, at the end of the run, the recipe's flattened hyper-parameters
with the final metrics and the confusion matrix, where the tracker takes them.

A resumed run does not log a step twice: TensorBoard purges the events past the resume point, ``scalars.csv``
drops its rows past it, and wandb and MLflow continue the same run (its id is kept in the run folder's
``trackers.json``) and skip the steps they already hold. :mod:`aip.tracking` drives them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from aip import files
from aip.errors import AipError
from aip.rundir import RunDir

#: the names train.log accepts, in the order the docs list them
BACKENDS = ("tensorboard", "wandb", "mlflow", "csv")
#: the pip extra that installs each backend's client (csv needs none)
EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
#: the longest parameter value MLflow takes everywhere: older servers and databases hold 500 characters
#: (newer ones 6,000); a longer recipe value (a long list or URL) is cut, with "..." at its end
MLFLOW_PARAM_CHARS = 500
#: the longest side, in pixels, of the confusion matrix image sent to TensorBoard and wandb (a 1,000-class
#: matrix at print resolution is tens of megapixels; the run folder's confusion.png keeps every pixel)
IMAGE_SIDE = 2048


class Backend(Protocol):
    """One tracker of one run, open from the step it resumes at."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` (tagged names such as ``train/loss``; finite numbers) at ``step``."""

    def finish(self, *, step: int, hparams: dict[str, Any], final: dict[str, float], image: Path | None) -> None:
        """At the end of the run: the hyper-parameters, the final metrics (``final/top1``, ...), the image."""

    def close(self, *, finished: bool) -> None:
        """Flush and release the tracker; ``finished`` is False for a run that stopped early or failed."""


def open_backend(name: str, *, run_dir: Path, start_step: int, hparams: dict[str, Any], run_name: str) -> Backend:
    """The backend ``name`` (one of :data:`BACKENDS`) of the run in ``run_dir``, resumed at ``start_step``."""
    if name == "tensorboard":
        return TensorBoard(run_dir, start_step=start_step)
    if name == "wandb":
        return Wandb(run_dir, hparams=hparams, run_name=run_name)
    if name == "mlflow":
        return Mlflow(run_dir, hparams=hparams, run_name=run_name)
    if name == "csv":
        return Csv(run_dir / RunDir.SCALARS_CSV, start_step=start_step)
    raise ValueError(f"{name!r} is not one of {BACKENDS} (aip.tracking.Tracker checks train.log's names)")


def _client(backend: str, module: str) -> Any:
    """Import the tracker's client ``module``; a missing one is a one-line error naming the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise AipError(f"train.log = ['{backend}'] needs the {backend} package; "
                       f"pip install 'aip[{EXTRAS[backend]}]'") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]


def read_ids(run_dir: Path) -> dict[str, Any]:
    """What the run folder's ``trackers.json`` keeps (the wandb and MLflow run ids, the step the end was logged
    at); empty when it is missing or damaged."""
    try:
        data = json.loads((run_dir / RunDir.TRACKER_IDS).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_id(run_dir: Path, key: str, value: Any) -> None:
    """Set ``key`` in the run folder's ``trackers.json`` (written atomically)."""
    files.write_text(json.dumps({**read_ids(run_dir), key: value}, indent=2) + "\n", run_dir / RunDir.TRACKER_IDS)


def _scalar_params(hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` with every value a number, a bool or a string (lists and None as text), as TensorBoard takes."""
    return {k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in hparams.items()}


def _image(path: Path) -> Any:
    """The PNG ``path`` as an RGB PIL image whose longest side is at most :data:`IMAGE_SIDE`."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
    img.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    return img


class TensorBoard:
    """``torch.utils.tensorboard`` into the run folder's ``tb/``: scalars, and at the end the HParams tab
    (the recipe with ``final/top1`` as its metric) and the confusion matrix under Images."""

    def __init__(self, run_dir: Path, *, start_step: int) -> None:
        tb = _client("tensorboard", "torch.utils.tensorboard")
        # purge_step drops events past the resume point, as steps.jsonl does
        self.writer = tb.SummaryWriter(str(run_dir / RunDir.TB), purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def finish(self, *, step: int, hparams: dict[str, Any], final: dict[str, float], image: Path | None) -> None:
        import numpy as np
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        metrics = {f"final/{k}": v for k, v in final.items()}
        # into this run's own event file (SummaryWriter.add_hparams would open a sub-run beside it)
        for summary in hparams_summaries(_scalar_params(hparams), metrics):
            self.writer.file_writer.add_summary(summary, step)
        self.scalars(step, metrics)
        if image is not None:
            self.writer.add_image("confusion", np.asarray(_image(image)), step, dataformats="HWC")

    def close(self, *, finished: bool) -> None:
        self.writer.close()


class Wandb:
    """A Weights & Biases run: project ``WANDB_PROJECT`` (else ``aip``), name ``WANDB_NAME`` (else the recipe's
    name), files under ``WANDB_DIR`` (else the run folder); the recipe as its config; resumed by the id kept in
    ``trackers.json`` (``resume="allow"``), logging only steps past those the run holds (the server's count, or
    offline the last step this folder logged, kept there when the tracker closes)."""

    def __init__(self, run_dir: Path, *, hparams: dict[str, Any], run_name: str) -> None:
        self.wandb = wandb = _client("wandb", "wandb")
        saved = read_ids(run_dir).get("wandb", {})
        run_id = saved.get("id") or secrets.token_hex(4)  # wandb's own generator is not public API
        self.run_dir, self.saved = run_dir, {"id": run_id, "last_step": int(saved.get("last_step", -1))}
        save_id(run_dir, "wandb", self.saved)
        directory = os.environ.get("WANDB_DIR") or str(run_dir)
        try:
            self.run = wandb.init(id=run_id, resume="allow", config=hparams, dir=directory,
                                  project=None if os.environ.get("WANDB_PROJECT") else "aip",
                                  name=None if os.environ.get("WANDB_NAME") else run_name)
        except Exception as e:  # the client's errors have no common base (login, network, settings)
            raise AipError(f"wandb could not start a run ({_first_line(e)}); log in (wandb login, or "
                           "WANDB_API_KEY), or set WANDB_MODE=offline and sync later with wandb sync") from None
        # a resumed run holds the steps below this one
        self.first = max(int(self.run.step), self.saved["last_step"] + 1)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if step >= self.first:
            self.run.log(values, step=step)
            self.saved["last_step"] = max(self.saved["last_step"], step)

    def finish(self, *, step: int, hparams: dict[str, Any], final: dict[str, float], image: Path | None) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in final.items()})
        if image is not None and step >= self.first:
            self.run.log({"confusion": self.wandb.Image(_image(image), caption="confusion matrix")}, step=step)

    def close(self, *, finished: bool) -> None:
        self.run.finish(exit_code=0 if finished else 1)
        save_id(self.run_dir, "wandb", self.saved)


class Mlflow:
    """An MLflow run through ``MlflowClient`` (no global active run): the store ``MLFLOW_TRACKING_URI`` (else
    MLflow's default), the experiment ``MLFLOW_EXPERIMENT_NAME`` (else ``aip``); the recipe as its params, the
    confusion matrix as an artifact; resumed by the run id kept in ``trackers.json``, each metric logged only
    past the last step MLflow holds for it."""

    def __init__(self, run_dir: Path, *, hparams: dict[str, Any], run_name: str) -> None:
        _client("mlflow", "mlflow")
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = mlflow.get_tracking_uri()  # MLFLOW_TRACKING_URI, else MLflow's default
        try:
            self.client = client = MlflowClient(uri)
            run = self._run(run_dir, run_name=run_name, uri=uri)
        except Exception as e:  # a store that cannot be opened (no server, a scheme mlflow-skinny lacks)
            raise AipError(f"MLflow could not open the tracking store {uri} ({_first_line(e)}); set "
                           "MLFLOW_TRACKING_URI to a server (http://HOST:5000) or to file:./mlruns with "
                           "MLFLOW_ALLOW_FILE_STORE=true, or pip install mlflow for its sqlite default") from None
        self.run_id = run.info.run_id
        held = run.data.params
        params = [Param(k, self._value(v)) for k, v in hparams.items() if k not in held]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.run_id, params=params[i:i + 100])
        # per metric, the last step this run holds (from an earlier attempt): those steps are not logged again
        self.last = {k: max(m.step for m in client.get_metric_history(self.run_id, k)) for k in run.data.metrics}

    def _run(self, run_dir: Path, *, run_name: str, uri: str) -> Any:
        saved = read_ids(run_dir).get("mlflow", {})
        if saved.get("run_id") and saved.get("tracking_uri") == uri:
            run = self.client.get_run(saved["run_id"])
            self.client.update_run(run.info.run_id, status="RUNNING")
            return run
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "aip"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=run_name)
        save_id(run_dir, "mlflow", {"run_id": run.info.run_id, "tracking_uri": uri})
        return run

    @staticmethod
    def _value(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return text if len(text) <= MLFLOW_PARAM_CHARS else text[:MLFLOW_PARAM_CHARS - 3] + "..."

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items() if step > self.last.get(k, -1)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, *, step: int, hparams: dict[str, Any], final: dict[str, float], image: Path | None) -> None:
        self.scalars(step, {f"final/{k}": v for k, v in final.items()})
        if image is not None:
            self.client.log_artifact(self.run_id, str(image))

    def close(self, *, finished: bool) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")


class Csv:
    """``scalars.csv``: a ``step`` column and one column per scalar name, one row per logging call (a step and
    its evaluation are two rows); a new name widens the header (the file is rewritten). aip keeps this small
    writer rather than depend on Lightning's CSVLogger for a file the standard library's csv writes."""

    def __init__(self, path: Path, *, start_step: int) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if _step(r) is not None and _step(r) <= start_step]
        self.columns = ["step", *_union(r.keys() for r in self.rows)]
        self._rewrite()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        files.write_text(buf.getvalue(), self.path)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        self.rows.append(row)
        if set(row) - set(self.columns):
            self.columns += [k for k in row if k not in self.columns]
            self._rewrite()
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)

    def finish(self, *, step: int, hparams: dict[str, Any], final: dict[str, float], image: Path | None) -> None:
        self.scalars(step, {f"final/{k}": v for k, v in final.items()})

    def close(self, *, finished: bool) -> None:
        pass


def _step(row: dict[str, Any]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


def _union(keys: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for ks in keys:
        seen.update((k, None) for k in ks if k != "step" and k is not None)
    return list(seen)
