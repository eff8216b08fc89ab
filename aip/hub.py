"""Model hubs: teachers from ``torch.hub`` repositories (e.g. CIFAR ResNets published on GitHub), and students
shared on the Hugging Face Hub (:func:`push_to_hub`, :func:`download_student`).

``torch.hub`` caches the repository under ``$TORCH_HOME/hub/OWNER_REPO_BRANCH`` and weights under
``$TORCH_HOME/hub/checkpoints``; once both are cached, loading works offline. The Hugging Face Hub caches a
repo under ``$HF_HOME/hub/models--USER--REPO``; once cached, ``HF_HUB_OFFLINE=1`` loads it with no network.
Pushing always needs the network and a token.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip.errors import AipError, UsageError


def load_hub(repo: str, entry: str, **kwargs: Any) -> nn.Module:
    """``torch.hub.load(repo, entry, pretrained=True, **kwargs)`` with one-line errors.

    Args:
        repo: ``"owner/name"`` or ``"owner/name:branch"``.
        entry: the entry point defined in the repository's ``hubconf.py``.
    """
    kwargs.setdefault("pretrained", True)
    try:
        model = torch.hub.load(repo, entry, trust_repo=True, skip_validation=True, verbose=False, **kwargs)
    except (RuntimeError, OSError, ValueError) as e:  # no network and no cache, missing entry, bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AipError(
            f"could not load torch.hub model {repo}:{entry} ({first}); check the names, or pre-fill "
            f"{torch.hub.get_dir()} while online"
        ) from None
    except AttributeError:
        raise UsageError(f"torch.hub repository {repo} has no entry point {entry!r}") from None
    if not isinstance(model, nn.Module):
        raise AipError(f"torch.hub entry {repo}:{entry} returned {type(model).__name__}, not a model")
    return model


# --- the Hugging Face Hub: where exported students are shared ---------------------------------------------------
#
# aip uses huggingface_hub's own calls (snapshot_download, HfApi.upload_folder) rather than PyTorchModelHubMixin:
# the mixin rebuilds a model as ``cls(**config)`` from one Python class, while an aip student is rebuilt from its
# recipe by the modality plugin named in it (aip.student.load_student), and the mixin writes its own config.json
# and model card over the ones aip.export writes (aip.card). The folder layout is the Hub's either way.

#: what loading a student from the Hub downloads (a repo may hold more: ONNX, TorchScript, figures)
HUB_FILES = ["config.json", "model.safetensors", "README.md"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def is_repo_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hub repo id (``user/repo``)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".git", "."))


def download_student(repo_id: str, *, revision: str | None = None) -> Path:
    """The local folder of the export published as ``repo_id`` on the Hugging Face Hub: downloaded into the
    Hub's cache (``$HF_HOME/hub``), or read from there alone with ``HF_HUB_OFFLINE=1`` (no network then).

    Raises:
        AipError: no such repo, no network and nothing cached, or a repo that is not an aip export.
    """
    from huggingface_hub import snapshot_download

    from aip import __version__

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES, library_name="aip",
                                        library_version=__version__))
    except Exception as e:  # huggingface_hub raises its own types (offline, 401/404, timeouts) and OSError
        raise AipError(f"{repo_id} is not a folder here, and the Hugging Face Hub repo {repo_id} could not be "
                       f"fetched ({type(e).__name__}: {_first(e)}); pass a run directory or export folder, or a Hub "
                       "repo id while online (with HF_HUB_OFFLINE=1 only the local cache is read)") from None
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise AipError(f"the Hugging Face Hub repo {repo_id} holds no config.json and model.safetensors; is it an "
                       "`aip export` folder?")
    return folder


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None) -> str:
    """Upload the ``aip export`` folder ``folder`` to the Hugging Face Hub repo ``repo_id`` (created if it does
    not exist; needs a network and a token: ``hf auth login`` or ``HF_TOKEN``); returns the commit's URL.

    Raises:
        AipError: ``folder`` is not an export, or the Hub refused (no token, no rights, no network).
    """
    import json

    from huggingface_hub import HfApi

    folder = Path(folder).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = None
    if not (isinstance(config, dict) and "aip_version" in config and (folder / "model.safetensors").is_file()):
        raise UsageError(f"{folder} is not an `aip export` folder (no config.json of aip and model.safetensors); "
                         "run `aip export RUN` first and push its folder")
    if not is_repo_id(repo_id):
        raise UsageError(f"{repo_id!r} is not a Hub repo id; give it as user/repo or org/repo")
    api = HfApi(token=token, library_name="aip")
    message = commit_message or f"aip export of {config.get('recipe', {}).get('name', 'a student')}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, ignore_patterns=[".*"], commit_message=message)
    except Exception as e:  # HTTP errors, no token, no network: huggingface_hub's own types and OSError
        raise AipError(f"could not push {folder.name} to the Hugging Face Hub repo {repo_id} ({type(e).__name__}: "
                       f"{_first(e)}); log in with `hf auth login` (or set HF_TOKEN) and check the network") from None
    return str(info.commit_url)


def _first(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
