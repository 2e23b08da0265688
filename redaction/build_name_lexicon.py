"""Builds `name_lexicon.json`, the first names and surnames the lexicon recognizer knows.

    .venv/bin/python -m tokentrail.redaction.build_name_lexicon   # needs the dev extra (names-dataset)

The source is the `names-dataset` package (MIT; 3.3.1 ships first names and surnames counted in
105 countries, with a per-country popularity rank). Loading it takes ~3 GB of memory and several
seconds, far too much for a worker, so it is read once here and the names that rank in the top
`--top` of at least one country are written to a compact JSON file the redactor loads (about a
megabyte, a few ms). Only names, no counts per person: nothing here identifies anyone. The
evaluation set is generated with Faker, a different source, so the recognizer is not graded on
its own word list.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("name_lexicon.json")


def _ranked(path: Path, top: int) -> list[str]:
    with gzip.open(path, "rb") as f:
        names: dict[str, dict[str, Any]] = pickle.load(f)  # the package's own data file
    keep = []
    for name, info in names.items():
        ranks = info.get("rank") or {}
        if not name.isalpha() or len(name) < 2 or not any(r is not None and r <= top for r in ranks.values()):
            continue
        keep.append(name)
    return sorted(keep)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--top", type=int, default=1000, help="keep names within this rank in at least one country")
    args = p.parse_args(argv)
    import names_dataset

    data = Path(names_dataset.__file__).parent / "v3"
    lexicon = {
        "source": f"names-dataset 3.3.1 (MIT), names ranked within the top {args.top} of at least one country",
        "first": _ranked(data / "first_names.pkl.gz", args.top),
        "last": _ranked(data / "last_names.pkl.gz", args.top),
    }
    OUT.write_text(json.dumps(lexicon, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(lexicon['first'])} first names, {len(lexicon['last'])} surnames, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
