"""A second process using a spool folder, driven line by line on stdin (one command per line).

    append <text>   spool <text> as one event (stays in this process's open segment)
    drain           replay everything this process may claim; print the events as one JSON list
    close           close the spool (the open segment becomes replayable by anyone)
    claim           claim one segment and keep it claimed, as a crash in the middle of a replay would
    hold            print the names of this process's files (it then waits to be killed)

Every command answers one line on stdout, so the test knows the step is done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokentrail.collectors.spool import Spool


def main(directory: str) -> None:
    spool = Spool(directory, max_bytes=1_000_000)
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        command, _, arg = line.rstrip("\n").partition(" ")
        if command == "append":
            print(json.dumps(spool.append([arg.encode()])), flush=True)
        elif command == "drain":
            got: list[str] = []
            while (segment := spool.claim_oldest()) is not None:
                got += [value.decode() for value in segment.values()]
                segment.done()
            print(json.dumps(got), flush=True)
        elif command == "close":
            spool.close()
            print(json.dumps("closed"), flush=True)
        elif command == "claim":
            segment = spool.claim_oldest()
            print(json.dumps(segment.path.name if segment else None), flush=True)
        elif command == "hold":
            print(json.dumps(sorted(p.name for p in Path(directory).rglob("*") if spool.writer in p.name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
