"""scripts/profile_step.py: each stage of a tiny recipe is timed and profiled, ops listed by their own time."""

from __future__ import annotations

import importlib.util

from aip import recipe as recipe_mod
from modalities.audio import modality
from tests.conftest import ROOT


def test_profile_step_prints_each_stage_and_its_top_ops(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "scripts" / "profile_step.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    path = tmp_path / "tiny.toml"
    path.write_text(recipe_mod.from_dict(modality.example()).to_toml())
    script.main([str(path), "--device", "cpu", "--num-classes", "3", "--steps", "1", "--warmup", "0",
                 "--rows", "4", "--set", "train.view_pool=2"])
    out = capsys.readouterr().out
    stages = [line for line in out.splitlines() if line.startswith("## ")]
    assert [s.split(":")[0] for s in stages] == ["## data", "## teacher forward (8 views)",
                                                  "## student forward + backward + step (4 views)"]
    assert all("ms CPU time" in s for s in stages) and out.count("Self CPU") >= 3  # a table per stage
