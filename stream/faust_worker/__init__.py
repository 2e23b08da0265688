"""`tokentrail worker`: the faust-streaming app that runs the pipeline on Kafka.

- `config`: `WorkerConfig` and its command line (`parse_args`).
- `app`: `build_app`, the faust app with its one agent, and `run_worker`, which runs it (faust is
  imported inside, so importing this package does not need the pipeline extra).
- `messages`: what the worker publishes (dead letters, detections, halt records).
- `loop_state`: the loop detector's state in a faust Table; `insights_job`: the insights timer's job.
- `transport`: faust's Kafka transport with a cheaper per-message hand-off (`tokentrail+kafka://`).
"""

from .app import build_app, run_worker
from .config import ENV_KAFKA, WorkerConfig, parse_args

__all__ = ["ENV_KAFKA", "WorkerConfig", "build_app", "parse_args", "run_worker"]
