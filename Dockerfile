# The tokentrail processor image: `tokentrail worker` by default, and the same image runs the
# schema migration, the Grafana grants and the traffic generator in compose.yaml.
#
# The package is installed the way CI installs it (scripts/_setup.sh): a venv, then pip on the
# project's own pyproject.toml with an extra. CI takes `dev` (tests, benchmarks); the image takes
# `pipeline`, the extra that holds the worker's dependencies (faust, Presidio and its spaCy model,
# clickhouse-connect, chDB, genai-prices), and nothing else. Not editable: the source is not kept.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/tokentrail \
    PATH=/opt/tokentrail/bin:$PATH

# Only what the build needs: pyproject.toml, the readme it names, and the five package folders
# it maps (tests/test_compose.py checks this list against pyproject.toml).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY collectors ./collectors
COPY redaction ./redaction
COPY stream ./stream
COPY sinks ./sinks
COPY dashboards ./dashboards
# The two smoke checks fail the build, not the first start: the CLI runs, and redaction loads its
# engine and spaCy model offline (the key is a throwaway; no pseudonym from it is ever stored).
RUN python -m venv "$VIRTUAL_ENV" \
 && pip install '.[pipeline]' \
 && tokentrail schema events >/dev/null \
 && echo '"mail jo.doe@example.com"' | TOKENTRAIL_REDACTION_KEY=image-build-smoke-check tokentrail redact >/dev/null \
 && rm -rf /src

# Never run as root. The home directory is the working directory, so the worker's data dir
# (.tokentrail/worker) and library caches land somewhere this user may write. faust creates only
# the last level of its data dir, so .tokentrail/ must exist before `tokentrail worker` starts.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin tokentrail \
 && install -d -o tokentrail -g tokentrail /home/tokentrail/.tokentrail
USER tokentrail
WORKDIR /home/tokentrail

ENTRYPOINT ["tokentrail"]
CMD ["worker"]
