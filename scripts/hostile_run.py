"""A hostile run against the aip CLI: each case feeds one bad input and checks the three promises of
docs/guarantees.md: no traceback, a one-line ``error:`` message with the exit code of its kind (2 usage, 1 run
time), and no user file lost or changed.

    python scripts/hostile_run.py [--keep DIR]

It needs the offline default's teacher cached (``aip teacher fashion-mnist`` once) and Fashion-MNIST on disk,
trains one tiny run (about a minute on 2 cores) for the cases that need a run folder, and prints a Markdown
table: case, exit code, outcome. The scratch folder is removed unless ``--keep`` names one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TINY = ["--set", "train.epochs=1", "--set", "train.samples_per_epoch=512", "--set", "train.batch_size=64",
        "--set", "eval.limit=500", "--set", "train.view_pool=1"]


@dataclass
class Case:
    name: str
    args: list[str]
    code: int  # the exit code the kind of error must give
    setup: Callable[[Path], None] | None = None
    guard: list[str] | None = None  # files (relative to the scratch folder) that must come out unchanged


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` grey pixels, with a tiny (wrong-sized) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def fifo(rel: str) -> Callable[[Path], None]:
    return lambda d: os.mkfifo(d / rel)


def link(rel: str, target: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, d / rel)
    return setup


def cases() -> list[Case]:
    R = "fashion-mnist"
    return [
        # recipes and overrides
        Case("recipe path is a folder", ["check", "adir"], 2, lambda d: (d / "adir").mkdir()),
        Case("recipe is a FIFO", ["check", "pipe.toml"], 2, fifo("pipe.toml")),
        Case("recipe is not UTF-8", ["check", "bad.toml"], 2, write("bad.toml", b"name = \"\xff\xfe\"\n")),
        Case("recipe names an unknown modality", ["check", "m.toml"], 2,
             write("m.toml", 'modality = "smell"\nname = "x"\n')),
        Case("--set with a string for an integer", ["check", R, "--set", "train.epochs=abc"], 2),
        Case("--set with an overflowing float", ["check", R, "--set", "train.lr=1e999"], 2),
        Case("--set without '='", ["check", R, "--set", "train.epochs"], 2),
        Case("--set an unknown section", ["check", R, "--set", "nosuch.key=1"], 2),
        Case("negative eval.limit", ["check", R, "--set", "eval.limit=-1"], 2),
        # sources
        Case("source is an empty file", ["preview", R, "--set", "source.uri=empty.png", "--out", "pv"], 1,
             write("empty.png", b"")),
        Case("source is a PNG claiming 100000 x 100000 pixels",
             ["preview", R, "--set", "source.uri=bomb.png", "--out", "pv2"], 1,
             write("bomb.png", png_bytes(100000, 100000))),
        Case("source is a broken link", ["preview", R, "--set", "source.uri=gone.png", "--out", "pv3"], 2,
             link("gone.png", "nowhere.png")),
        Case("source is a folder", ["preview", R, "--set", "source.uri=adir2", "--out", "pv4"], 2,
             lambda d: (d / "adir2").mkdir()),
        # run folders and outputs
        Case("--out is a file", ["run", R, *TINY, "--out", "afile"], 2, write("afile", "mine"), ["afile"]),
        Case("--out under a file", ["run", R, *TINY, "--out", "afile2/sub"], 2, write("afile2", "mine"), ["afile2"]),
        Case("--out a user's folder with their files", ["run", R, *TINY, "--out", "theirs"], 2,
             write("theirs/notes.txt", "mine"), ["theirs/notes.txt"]),
        Case("preview into a folder holding the user's views.png", ["preview", R, "--out", "pvu"], 2,
             write("pvu/views.png", "mine"), ["pvu/views.png"]),
        Case("AIP_CACHE is a file", ["check", R, "--preflight"], 2, write("cachefile", "x")),
        Case("--device cuda on a machine without one", ["run", R, *TINY, "--device", "cuda", "--out", "dev"], 2),
        Case("--device nonsense", ["bench", R, "--device", "tpu:7"], 2),
        # checkpoints, exports, predictions
        Case("eval of random bytes named .pt", ["eval", R, "--checkpoint", "rand.pt"], 1,
             write("rand.pt", os.urandom(4096))),
        Case("eval of a folder as checkpoint", ["eval", R, "--checkpoint", "adir3"], 2,
             lambda d: (d / "adir3").mkdir()),
        Case("eval of a truncated best.pt", ["eval", R, "--checkpoint", "run/trunc.pt"], 1,
             lambda d: (d / "run" / "trunc.pt").write_bytes((d / "run" / "best.pt").read_bytes()[:2000])),
        Case("export of a folder that is no run", ["export", "adir4", "--out", "ex"], 2,
             lambda d: (d / "adir4").mkdir()),
        Case("export in an unknown format", ["export", "run", "--format", "pickle", "--out", "ex2"], 2),
        Case("export over a user's file in the export folder", ["export", "run", "--out", "ex3"], 2,
             write("ex3/config.json", "{\"mine\": 1}"), ["ex3/config.json"]),
        Case("predict on a text file named .png", ["predict", "run", "text.png"], 1, write("text.png", "hello")),
        Case("predict on a missing file", ["predict", "run", "missing.png"], 2),
        Case("predict with batch size 0", ["predict", "run", "text2.png", "--batch-size", "0"], 2,
             write("text2.png", "hello")),
        # reports and sweeps
        Case("report of an empty folder", ["report", "emptydir"], 2, lambda d: (d / "emptydir").mkdir()),
        Case("report of a file", ["report", "afile3"], 2, write("afile3", "x")),
        Case("sweep file with an axis of no values", ["sweep", "s.toml", "--out", "sw"], 2,
             write("s.toml", 'base = "fashion-mnist"\n[axis]\n"train.lr" = []\n')),
        Case("bench with --num-classes -1", ["bench", R, "--num-classes", "-1"], 2),
        Case("bench with --steps -3", ["bench", R, "--steps", "-3"], 2),
        Case("--set nested 3000 levels deep", ["check", R, "--set", "train.milestones=" + "[" * 3000 + "]" * 3000], 2),
        Case("an unknown tracker in train.log", ["check", R, "--set", "train.log=['nosuch']"], 2),
        Case("a teacher checkpoint that is missing",
             ["check", R, "--preflight", "--set", "teacher.kind=checkpoint", "--set", "teacher.checkpoint=missing.pt"],
             1),
        Case("export into the run folder itself", ["export", "run", "--out", "run"], 2),
        Case("predict on a folder with no images", ["predict", "run", "adir5"], 2, lambda d: (d / "adir5").mkdir()),
        Case("source URL on a closed local port",
             ["preview", R, "--set", "source.uri=http://127.0.0.1:9/x.png", "--out", "pv5"], 1),
        Case("report of a sweep.json holding a list", ["report", "sw2"], 1, write("sw2/sweep.json", "[]")),
        Case("eval of a checkpoint with NaN weights", ["eval", R, "--checkpoint", "run/nan.pt"], 1,
             lambda d: nan_checkpoint(d / "run" / "best.pt", d / "run" / "nan.pt")),
    ]


def nan_checkpoint(src: Path, dst: Path) -> None:
    """``src`` with its first floating-point weight set to NaN."""
    import torch

    ck = torch.load(src, weights_only=True, map_location="cpu")
    state = ck.get("student", ck) if isinstance(ck, dict) else ck
    for v in state.values():
        if torch.is_tensor(v) and v.is_floating_point():
            v.view(-1)[0] = float("nan")
            break
    torch.save(ck, dst)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def judge(case: Case, proc: subprocess.CompletedProcess[str], before: dict[str, str], d: Path) -> str:
    err = proc.stderr
    if "Traceback" in err:
        return "traceback"
    if proc.returncode == 0:
        return "exit 0 (accepted)"
    # aip check --preflight ends its report with one summary line instead of an error: line
    errors = [line for line in err.splitlines() if line.startswith(("error:", "# the run cannot start here"))]
    if len(errors) != 1:
        return f"{len(errors)} error lines"
    changed = [rel for rel, h in before.items() if digest(d / rel) != h]
    if changed:
        return f"user file changed: {', '.join(changed)}"
    if proc.returncode != case.code:
        return f"one line, exit {proc.returncode} (expected {case.code})"
    return "clean"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="scratch folder to use and keep")
    ap.add_argument("-k", default="", help="run only the cases whose name contains this")
    a = ap.parse_args()
    d = a.keep or Path(tempfile.mkdtemp(prefix="aip-hostile-"))
    d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AIP_PROGRESS": "0"}
    aip = [sys.executable, "-m", "aip"]
    if not (d / "run" / "best.pt").is_file():
        print("training the tiny run the checkpoint cases use ...", file=sys.stderr)
        subprocess.run([*aip, "run", "fashion-mnist", *TINY, "--out", str(d / "run")], cwd=d, env=env, check=True,
                       capture_output=True)
    rows, bad = [], 0
    for c in cases():
        if a.k not in c.name:
            continue
        if c.setup is not None:
            try:
                c.setup(d)
            except FileExistsError:
                pass
        before = {rel: digest(d / rel) for rel in (c.guard or [])}
        run_env = {**env, "AIP_CACHE": str(d / "cachefile")} if "AIP_CACHE" in c.name else env
        proc = subprocess.run([*aip, *c.args], cwd=d, env=run_env, capture_output=True, text=True, timeout=600)
        outcome = judge(c, proc, before, d)
        bad += outcome != "clean"
        line = next((x for x in proc.stderr.splitlines() if x.startswith(("error:", "# the run cannot"))), "")
        rows.append((c.name, proc.returncode, outcome, line[:110]))
        print(f"{outcome:>10}  {c.name}", file=sys.stderr)
    print("| case | exit | outcome | message |\n|---|---|---|---|")
    for name, code, outcome, line in rows:
        print(f"| {name} | {code} | {outcome} | {line.replace('|', '/')} |")
    print(f"\n{len(rows)} cases, {len(rows) - bad} clean, {bad} not clean")
    if a.keep is None:
        shutil.rmtree(d, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
