"""The package name ``modalities`` is also an unrelated project's on the package index: aip checks that the
``modalities`` it imports is its own (the ``__aip__`` marker) before it loads a built-in modality."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aip.errors import AipError
from aip.registry import check_builtin_package, load_modality


def test_aip_s_own_package_carries_the_marker() -> None:
    import modalities

    assert modalities.__aip__ is True
    check_builtin_package()
    assert load_modality("image").name == "image"


@pytest.mark.parametrize("init", ['"""Another project called modalities."""\n', "import not_installed_dependency\n"])
def test_another_modalities_package_first_on_the_path_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   init: str) -> None:
    (tmp_path / "modalities").mkdir()
    (tmp_path / "modalities" / "__init__.py").write_text(init)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "modalities" or m.startswith("modalities.")]:
        monkeypatch.delitem(sys.modules, name)  # restored afterwards: aip's own package comes back
    with pytest.raises(AipError) as e:
        load_modality("image")
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "modalities") in message
    assert "unrelated project 'modalities'" in message and "virtualenv of its own" in message
    assert "pip uninstall modalities" in message
