"""The parts of benchmarks/pipeline.py, one per measurement (the script is the command line).

- ``traffic``: the generator's lines, producing them to Kafka, reading the store back, and what
  the store must then hold;
- ``worker``: the real worker as a child process with an instrumented sink, and its parent handle;
- ``replay``: the embedded replay and per-stage cost;
- ``sustained``: draining a pre-produced backlog;
- ``latency``: collector-to-store latency at a paced rate;
- ``report``: the printed tables.
"""
