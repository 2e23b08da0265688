# Shared setup for scripts/test and scripts/demo (sourced, not run): install only what is missing.
# The venv gets the project with its dev extra, reinstalled only when pyproject.toml changes.

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing with apt-get: $*" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || { apt_install python3-venv && python3 -m venv .venv; }
  fi
  # pip's output (build-backend warnings included) is shown only when it fails.
  local stamp=.venv/.tokentrail-pyproject.sha256 want pip_log
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    pip_log="$(mktemp)"
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' >"$pip_log" 2>&1; then
      cat "$pip_log" >&2
      rm -f "$pip_log"
      echo "setup: pip install -e '.[dev]' failed" >&2
      exit 1
    fi
    rm -f "$pip_log"
    echo "$want" >"$stamp"
  fi
}
