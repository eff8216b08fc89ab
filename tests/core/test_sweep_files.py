"""Every shipped sweep (recipes/sweeps/) validates: each variant's recipe loads and its models build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aip import recipe as recipe_mod
from aip import sweep as sweep_mod

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "recipes" / "sweeps").glob("*.toml"))
ANALYSES = ("source", "data", "teacher", "student", "temperature", "augment")
OFFLINE = ("fashion-mnist", "spoken-keywords")


def test_every_analysis_has_a_gpu_scale_and_an_offline_form() -> None:
    names = {p.stem for p in SWEEPS}
    for analysis in ANALYSES:
        forms = {n.split("-", 1)[1] for n in names if n.split("-", 1)[0] == analysis}
        assert "fashion-mnist" in forms, analysis
        assert forms - set(OFFLINE), f"{analysis} has no GPU-scale form"


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_file_validates(path: Path) -> None:
    from aip.run import describe_models

    s = sweep_mod.load(path)
    variants = sweep_mod.validate(s)
    assert len({v.name for v in variants}) == len(variants) > 1
    assert s.description and (path.read_text().lstrip().startswith("#")), "say what the sweep measures"
    built = set()
    for v in variants:
        r = recipe_mod.load(s.base, v.overrides)
        models = json.dumps([r.to_dict()["student"], r.to_dict()["teacher"]], sort_keys=True)
        if models not in built:  # an unknown architecture or kwarg fails here, on the meta device
            built.add(models)
            describe_models(r)
    if s.base.stem in OFFLINE:
        assert all("http" not in json.dumps(v.point) for v in variants), "an offline form must not download"


def test_paper_sources_are_pinned_to_one_commit() -> None:
    s = sweep_mod.load(next(p for p in SWEEPS if p.stem == "source-cifar100"))
    urls = [u for u in s.axes[0].values if u.startswith("https://")]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["ameyoko.jpg", "animals.png", "sf.png", "hubble.jpg",
                                                    "random_noise.png"]
    assert len({u.rsplit("/", 4)[0] for u in urls}) == 1
