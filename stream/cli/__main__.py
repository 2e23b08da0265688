"""`python -m tokentrail.stream.cli`: the `tokentrail` command."""

import sys

from . import main

sys.exit(main())
