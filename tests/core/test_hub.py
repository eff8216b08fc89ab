"""aip.hub offline: ``load_hub`` against a pre-filled torch.hub cache (a fake GitHub repository checkout with a
``hubconf.py`` and its weights in ``checkpoints/``, loaded by torch.hub's own code); ``load_student("user/repo")``
from a pre-filled Hugging Face cache with ``HF_HUB_OFFLINE=1``; ``push_to_hub`` against a stub of the Hub's HTTP
API on 127.0.0.1, through huggingface_hub's own client (no mock of HfApi)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn

from aip.errors import AipError
from aip.hub import load_hub

URL = "https://example.com/cifarnets/tiny-0123abcd.pth"

HUBCONF = f'''
"""A tiny torch.hub repository, as published on GitHub."""
import torch
from torch import nn

dependencies = ["torch"]


def tiny(pretrained=False, num_classes=10):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, num_classes))
    if pretrained:
        model.load_state_dict(torch.hub.load_state_dict_from_url("{URL}", map_location="cpu", progress=False))
    return model


def not_a_model(pretrained=False):
    return {{"weights": None}}
'''


def _tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def _offline(url: object, *args: object, **kwargs: object) -> None:
    raise URLError("no network in this test")


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """``$TORCH_HOME/hub`` holding the ``someowner/cifarnets`` master checkout and its weights, with every
    network call of torch.hub failing as it does offline. Returns the cached state dict."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "urlopen", _offline)  # the default-branch probe (main or master?)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)  # repository archives and weights
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "hub"
    repo = hub / "someowner_cifarnets_master"
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text(textwrap.dedent(HUBCONF))
    (hub / "checkpoints").mkdir()
    torch.manual_seed(0)
    state = _tiny().state_dict()
    torch.save(state, hub / "checkpoints" / "tiny-0123abcd.pth")
    return state


@pytest.mark.parametrize("repo", ["someowner/cifarnets", "someowner/cifarnets:master"])
def test_loads_cached_repo_and_weights_offline(hub_cache: dict[str, torch.Tensor], repo: str) -> None:
    model = load_hub(repo, "tiny")
    loaded = model.state_dict()
    assert loaded.keys() == hub_cache.keys()
    assert all(torch.equal(loaded[k], v) for k, v in hub_cache.items())
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 10)


def test_passes_kwargs_to_the_entry(hub_cache: dict[str, torch.Tensor]) -> None:
    model = load_hub("someowner/cifarnets", "tiny", pretrained=False, num_classes=3)
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3)


@pytest.mark.parametrize(
    ("repo", "entry", "needle"),
    [
        ("otherowner/uncached", "tiny", "otherowner/uncached:tiny"),
        ("otherowner/uncached:main", "tiny", "otherowner/uncached:main:tiny"),
        ("someowner/cifarnets", "tiny2", "tiny2"),
        ("someowner/cifarnets", "not_a_model", "not a model"),
    ],
)
def test_errors_are_one_line(hub_cache: dict[str, torch.Tensor], repo: str, entry: str, needle: str) -> None:
    with pytest.raises(AipError) as info:
        load_hub(repo, entry)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_missing_weights_name_the_cache(hub_cache: dict[str, torch.Tensor]) -> None:
    (Path(torch.hub.get_dir()) / "checkpoints" / "tiny-0123abcd.pth").unlink()
    with pytest.raises(AipError, match="pre-fill") as info:
        load_hub("someowner/cifarnets", "tiny")
    assert "\n" not in str(info.value)


# --- the Hugging Face Hub, offline: a pre-filled cache for loading, a stub server on 127.0.0.1 for pushing -------
#
# huggingface_hub reads HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT into huggingface_hub.constants once,
# at import, and its functions read those constants at call time; so the tests set the environment to match and
# patch the constants (monkeypatch restores both).
REPO, COMMIT = "someone/tiny-student", "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face home in tmp_path (cache in hf/hub), nothing read from or written to the user's."""
    from huggingface_hub import constants

    home = tmp_path / "hf"
    (home / "hub").mkdir(parents=True)
    for name, value in (("HF_HOME", home), ("HF_HUB_CACHE", home / "hub")):
        monkeypatch.setenv(name, str(value))
        monkeypatch.setattr(constants, name, str(value))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the stub server is local: never through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    return home


@pytest.fixture()
def export_folder(tmp_path: Path) -> Path:
    from aip.export import export
    from tests.conftest import fake_run

    return export(fake_run(tmp_path / "runs", "image"), out=tmp_path / "export")


def prefill(hf_home: Path, folder: Path, repo: str = REPO, files: tuple[str, ...] = ("config.json",
                                                                                    "model.safetensors", "README.md")
            ) -> Path:
    """The cache layout huggingface_hub writes for ``repo`` at commit :data:`COMMIT`: blobs named by their hash,
    the snapshot's files linking to them, and refs/main naming the commit."""
    import hashlib

    cached = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = cached / "snapshots" / COMMIT
    (cached / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(COMMIT)
    for name in files:
        data = (folder / name).read_bytes()
        blob = cached / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_load_student_by_repo_id_from_a_prefilled_cache_offline(hf_home, export_folder, monkeypatch) -> None:
    import aip

    snapshot = prefill(hf_home, export_folder)
    offline(monkeypatch)
    monkeypatch.chdir(hf_home)  # no folder named like the repo here: the name is a repo id
    student = aip.load_student(REPO)
    local = aip.load_student(export_folder)
    assert student.source == snapshot and student.classes == local.classes == ["alpha", "beta", "gamma"]
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(student.net(x), local.net(x))
    # a repo the cache does not hold: one line saying why, and that HF_HUB_OFFLINE reads only the cache
    with pytest.raises(AipError) as e:
        aip.load_student("someone/not-cached")
    assert "\n" not in str(e.value) and "someone/not-cached" in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)


def test_a_cached_repo_that_is_no_export_is_one_line(hf_home, export_folder, monkeypatch) -> None:
    from aip.hub import download_student

    prefill(hf_home, export_folder, repo="someone/cards-only", files=("README.md", "config.json"))
    offline(monkeypatch)
    with pytest.raises(AipError, match="holds no config.json and model.safetensors") as e:
        download_student("someone/cards-only")
    assert "\n" not in str(e.value)


class StubHub:
    """A stub of the Hub's HTTP API on 127.0.0.1: it answers the calls ``HfApi.create_repo`` and
    ``HfApi.upload_folder`` make (create the repo, validate the card's YAML, pre-upload: every file "regular", so
    its bytes come inline in the commit, and the commit itself) and records them; ``status`` makes it refuse."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, code: int, obj: object) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                stub.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, b""))
                self._answer(404, {"error": "not in this stub"})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests.append(("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if stub.status != 200:
                    return self._answer(stub.status, {"error": "Invalid credentials in Authorization header"})
                if self.path == "/api/repos/create":
                    return self._answer(200, {"url": f"https://huggingface.co/{REPO}", "name": REPO})
                if self.path == "/api/validate-yaml":
                    return self._answer(200, {"errors": [], "warnings": []})
                if self.path == f"/api/models/{REPO}/preupload/main":
                    return self._answer(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                         "shouldIgnore": False} for f in json.loads(body)["files"]]})
                if self.path == f"/api/models/{REPO}/commit/main":
                    return self._answer(200, {"commitUrl": f"https://huggingface.co/{REPO}/commit/{COMMIT}",
                                              "commitOid": COMMIT, "pullRequestUrl": None})
                self._answer(404, {"error": "not in this stub"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def committed(self) -> tuple[dict, dict[str, bytes]]:
        """The last commit's header and files (path -> bytes), decoded from its NDJSON body."""
        import base64

        (body,) = [b for m, p, _, b in self.requests if p.endswith("/commit/main")]
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        return header, {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines
                        if x["key"] == "file"}


@pytest.fixture()
def stub_hub(hf_home: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    stub = StubHub()
    monkeypatch.setenv("HF_ENDPOINT", stub.url)
    monkeypatch.setattr(constants, "ENDPOINT", stub.url)
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def test_push_to_hub_uploads_the_export_through_the_hub_api(stub_hub, export_folder) -> None:
    from huggingface_hub import ModelCard

    from aip.hub import push_to_hub

    (export_folder / ".notes").write_text("a hidden file is not pushed")
    url = push_to_hub(export_folder, REPO, token="hf_test_token")
    assert url == f"https://huggingface.co/{REPO}/commit/{COMMIT}"
    paths = [p for m, p, _, _ in stub_hub.requests if m == "POST"]
    assert paths[0] == "/api/repos/create" and paths[-1] == f"/api/models/{REPO}/commit/main"
    create = next(r for r in stub_hub.requests if r[1] == "/api/repos/create")
    assert json.loads(create[3]) == {"name": "tiny-student", "organization": "someone"}
    assert create[2]["authorization"] == "Bearer hf_test_token" and "aip/" in create[2]["user-agent"]
    header, uploaded = stub_hub.committed()
    assert header["summary"] == "aip export of tiny-image"
    shipped = {p.name: p.read_bytes() for p in export_folder.iterdir() if not p.name.startswith(".")}
    assert uploaded == shipped and {"config.json", "model.safetensors", "README.md"} <= set(uploaded)
    card = ModelCard(uploaded["README.md"].decode())  # the card as the Hub receives it parses, with its metadata
    assert card.data.library_name == "aip" and card.data.license


def test_push_to_hub_refused_or_unreachable_is_one_line(stub_hub, export_folder, tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from aip.hub import push_to_hub

    stub_hub.status = 401
    with pytest.raises(AipError, match="could not push export to the Hugging Face Hub repo") as e:
        push_to_hub(export_folder, REPO, token="hf_wrong")
    assert "\n" not in str(e.value) and "hf auth login" in str(e.value)
    assert not [p for _, p, _, _ in stub_hub.requests if "/commit/" in p]  # nothing was committed
    closed = StubHub()  # a port nothing listens on: no network
    closed.server.server_close()
    monkeypatch.setattr(constants, "ENDPOINT", closed.url)
    with pytest.raises(AipError, match="check the network") as e:
        push_to_hub(export_folder, REPO, token="hf_test_token")
    assert "\n" not in str(e.value)
    with pytest.raises(AipError, match="not an `aip export` folder"):
        push_to_hub(tmp_path / "runs", REPO, token="hf_test_token")
    with pytest.raises(AipError, match="not a Hub repo id"):
        push_to_hub(export_folder, "no-slash", token="hf_test_token")
