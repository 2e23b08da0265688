"""The pipeline benchmark on two revisions of the code, run alternately: the ratio is the figure.

Absolute throughput on a shared two-core VM moves with the machine's load from one hour to the
next; two revisions measured in turn, in the same minutes, under the same load, do not drift
apart. This script checks BASE and REV (default HEAD) out into temporary git worktrees and runs
each one's own copy of `benchmarks/pipeline.py` in turn, ROUNDS times, then prints both medians and
their ratio. Each revision's code is imported through a `tokentrail` package of symlinks to its
folders, so the installed editable package is not touched. Committed revisions only: a working
tree being edited is no fixed point to measure.

    .venv/bin/python benchmarks/compare_revisions.py 8c45c44 --rounds 3 -- \\
        --skip replay latency inline --nlp-model auto

Arguments after `--` go to the benchmark of both revisions, which must both accept them. The
figure compared is the sustained run's messages/s (`--metric` picks another key of its results).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("collectors", "stream", "sinks", "dashboards", "redaction")  # pyproject's package-dir


def short(rev: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"not a revision of this repository: {rev!r}")
    return done.stdout.strip()


def checkout(rev: str, into: Path) -> tuple[Path, Path]:
    """REV as a detached worktree, and a folder whose `tokentrail` package points into it."""
    tree = into / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev], check=True)
    (tree / ".cache").symlink_to(ROOT / ".cache")  # the Kafka jars the broker script starts from
    package = into / "path" / "tokentrail"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(tree / name)
    return tree, into / "path"


def run(tree: Path, python_path: Path, args: list[str], metric: str, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(python_path), os.environ.get("PYTHONPATH")])))
    out.unlink(missing_ok=True)
    command = [sys.executable, "benchmarks/pipeline.py", *args, "--json", str(out)]
    subprocess.run(command, cwd=tree, env=env, check=False, stdout=subprocess.DEVNULL)
    if not out.exists():
        raise SystemExit(f"the benchmark of {tree} wrote no results (run it there by hand to see why)")
    return float(json.loads(out.read_text())["sustained"][metric])


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base", help="the revision to compare with (e.g. the code an issue measured)")
    parser.add_argument("rev", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--metric", default="messages_per_s")
    args = parser.parse_args(argv[:split])
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = [short(args.base), short(args.rev)]
    # By position, not by name: a revision against itself (an A/A run, the noise floor) is two checkouts.
    figures: list[list[float]] = [[], []]
    with tempfile.TemporaryDirectory(prefix="tt-compare-") as scratch:
        trees = [checkout(name, Path(scratch) / f"{n}-{name}") for n, name in enumerate(names)]
        try:
            for n in range(args.rounds):
                for side, (name, (tree, path)) in enumerate(zip(names, trees, strict=True)):
                    value = run(tree, path, argv[split + 1 :], args.metric, Path(scratch) / "out.json")
                    figures[side].append(value)
                    print(f"round {n + 1}: {name:>10}  {value:,.0f}", flush=True)
        finally:
            for tree, _ in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    base, new = (statistics.median(values) for values in figures)
    load = os.getloadavg()[0]
    print(f"\n{args.metric}, median of {args.rounds} alternating rounds (1-min load average now {load:.1f}):")
    for name, values in zip(names, figures, strict=True):
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:>10}  {statistics.median(values):8,.0f}   (runs: {runs})")
    print(f"  {names[1]} / {names[0]}: {new / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
