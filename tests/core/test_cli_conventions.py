"""What users of click/typer tools take for granted: -h, --version, shell completion, a light `aip --help`, and
shipped recipes run by name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT, run_cli

AIP = Path(sys.executable).parent / "aip"  # the console script, as a user calls it (completion keys on its name)


def aip_script(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    if not AIP.is_file():
        pytest.skip("the aip console script is not installed next to this Python")
    return subprocess.run([str(AIP), *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd or ROOT)


def test_version_is_the_packages():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"aip {version}"


@pytest.mark.parametrize("args", [["-h"], ["check", "-h"], ["sweep", "-h"]])
def test_dash_h_is_help(args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout and "--help" in r.stdout and "-h" in r.stdout


def test_importing_the_cli_does_not_import_torch():
    """`aip --help` took 2.9 s when cli.py imported torch through aip.recipe; now commands import it."""
    code = ("import sys, aip.cli\n"
            "print([m for m in ('torch', 'numpy', 'aip.recipe', 'modalities') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_through_main_does_not_import_torch():
    code = ("import sys\nsys.argv = ['aip', '--help']\nimport aip.cli\ntry:\n    aip.cli.main()\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "Usage" in r.stdout, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "False"


def test_show_completion_prints_a_script():
    r = aip_script("--show-completion", env={"SHELL": "/bin/bash"})
    assert r.returncode == 0, r.stderr
    assert "_AIP_COMPLETE" in r.stdout and "complete" in r.stdout


def test_completion_completes_command_names():
    r = aip_script(env={"_AIP_COMPLETE": "complete_bash", "COMP_WORDS": "aip ch", "COMP_CWORD": "1"})
    assert r.returncode == 0, r.stderr
    assert "check" in r.stdout.split()


def test_install_completion_writes_the_shells_files(tmp_path):
    r = aip_script("--install-completion", env={"SHELL": "/bin/bash", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "aip.sh"
    assert "_AIP_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


def test_shipped_recipe_by_name(tmp_path):
    """`aip check fashion-mnist` from any folder: the shipped recipe (a path still works)."""
    by_name = run_cli("check", "fashion-mnist", cwd=tmp_path)
    by_path = run_cli("check", str(ROOT / "recipes" / "fashion-mnist.toml"), cwd=tmp_path)
    readme = run_cli("check", "recipes/fashion-mnist.toml", cwd=tmp_path)  # the README's line, outside the repo
    for r in (by_name, by_path, readme):
        assert r.returncode == 0, r.stderr
    assert by_name.stdout == by_path.stdout == readme.stdout
    assert 'name = "fashion-mnist"' in by_name.stdout


def test_local_file_wins_over_a_shipped_name(tmp_path):
    (tmp_path / "fashion-mnist.toml").write_text((ROOT / "recipes" / "fashion-mnist.toml").read_text()
                                                 .replace('name = "fashion-mnist"', 'name = "mine"'))
    r = run_cli("check", "fashion-mnist.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'name = "mine"' in r.stdout


def test_unknown_recipe_name_lists_the_shipped_ones(tmp_path):
    r = run_cli("check", "fashion-mnst", cwd=tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "fashion-mnst" in lines[0] and "fashion-mnist" in lines[0] and "cifar10" in lines[0]


def test_sweep_by_name(tmp_path):
    r = run_cli("sweep", "temperature-fashion-mnist", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "loss.temperature" in r.stdout
