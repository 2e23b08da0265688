"""`tokentrail worker`: the faust-streaming app that runs the pipeline on Kafka.

- `config`: `WorkerConfig` and its command line (`parse_args`).
- `app`: `build_app`, the faust app with its one agent, and `main`, which runs it (faust is imported
  inside, so importing this package does not need the pipeline extra).
- `transport`: faust's Kafka transport with a cheaper per-message hand-off (`tokentrail+kafka://`).
"""

from .app import build_app, main
from .config import ENV_KAFKA, WorkerConfig, parse_args

__all__ = ["ENV_KAFKA", "WorkerConfig", "build_app", "main", "parse_args"]
