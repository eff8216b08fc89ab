"""Models from ``torch.hub`` repositories (e.g. CIFAR ResNets published on GitHub).

``torch.hub`` caches the repository under ``$TORCH_HOME/hub/OWNER_REPO_BRANCH`` and weights under
``$TORCH_HOME/hub/checkpoints``; once both are cached, loading works offline.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aip.errors import AipError


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
        raise AipError(f"torch.hub repository {repo} has no entry point {entry!r}") from None
    if not isinstance(model, nn.Module):
        raise AipError(f"torch.hub entry {repo}:{entry} returned {type(model).__name__}, not a model")
    return model
