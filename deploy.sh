#!/usr/bin/env bash
# Safe deploys of the pipeline's CloudFormation to AWS, or to an embedded local AWS (--local).
# The logic that is more than one aws CLI call lives in deploytools/ (see docs/deploy.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [--env E] [--region R] [--stack-name N] [--bucket B]
                   [--param Key=Value ...] [--plan] [--yes] [--delete] [--local [--stop | --smoke]]
                   [--stack-env-override STACK_ENV:ENV] [--bootstrap] [--remove-retained] [--push-processor]

Deploy templates/<env>/ (parent main.json and its nested stacks) with a reviewed change set.

  --env E          environment: dev (default) or another that `python -m generator environments` lists
  --region R       AWS region such as eu-west-1 (default: the environment's, as `python -m generator
                   environments` lists it)
  --stack-name N   parent stack name (default: the environment's, as `python -m generator.names stack --env E`
                   prints it); a stack deploy.sh creates is tagged Environment=<env> and Project=<project>,
                   and another environment's stack is refused
  --stack-env-override STACK_ENV:ENV
                   deploy (or --delete) ENV over a stack of STACK_ENV anyway; must name both
  --bucket B       artifact bucket (default: the account's and region's, as `python -m generator.names
                   artifact-bucket --account A --region R` prints it; created encrypted, versioned and private
                   when missing); must follow S3's bucket naming rules
  --param K=V      a parent template parameter (repeatable), e.g. ProcessorImage=repo/image:1.2.3
  --plan           show the change set, then delete it: change nothing; on AWS, IAM Access Analyzer
                   validates every policy of the templates first (an error blocks)
  --yes            do not ask for confirmation (required without a terminal)
  --delete         delete the environment's stack after confirmation; lists what is retained
  --bootstrap      create what is one per account and region (ECS service-linked role, API Gateway
                   CloudWatch role and account setting, artifact bucket) and exit; idempotent.
                   --local does it on every run
  --remove-retained
                   delete, after confirmation, the log groups a deleted stack of this environment retained
                   under fixed names (the preflight blocks a re-create while they exist), then exit
  --push-processor build processor/ with docker, push it to the account's ECR repository (the bootstrap's)
                   tagged with the commit, and deploy it by digest (--param ProcessorImage=<repo>@sha256:...);
                   a commit already pushed is not rebuilt; needs docker and a clean processor/
  --local          run against an embedded AWS emulator (moto server on localhost, dummy
                   credentials, with a local PostgreSQL and Redis for the processor, password sign-in);
                   bootstraps .venv; no confirmation is asked (nothing is at stake)
  --stop           with --local: stop the emulator (and its PostgreSQL and Redis) and exit
  --smoke          with --local: run three videos through the deployed local pipeline (one the local
                   processor encodes and whose outputs are checked, one whose task fails, a text file that
                   ends InvalidMedia), print each execution's status and notification, and exit; needs the
                   emulator a deploy started (it never starts one)
  --template-dir D deploy the templates in D instead of templates/<env>/ (tests; skips the
                   generator freshness check, not cfn-lint)
  -h, --help       this help

Environment: LOCAL_AWS_PORT (default 4599; 1024-65535), LOCAL_AWS_STATE_DIR (default build/local-aws),
BUILD_DIR (default build), DEPLOY_POLL_SECONDS (default 5).
Exit status: 0 deployed, nothing to change, planned or deleted; 1 the deployment (or deletion) failed, or was
cancelled at the prompt; 2 bad usage or input, or a problem of the environment (no credentials, no network, a
missing tool, no emulator for --smoke, a stack in a state that refuses the action): one line on stderr, nothing
changed; 130 interrupted (Ctrl-C or SIGTERM): one line with the state things are in and what to run next.
EOF
}

die() { echo "deploy.sh: error: $*" >&2; exit 1; }
# A problem of the environment or of the input that stops deploy.sh before it changes anything: exit 2.
refuse() { echo "deploy.sh: error: $*" >&2; exit 2; }
usage_error() { echo "deploy.sh: error: $* (see ./deploy.sh --help)" >&2; exit 2; }
step() { printf '\n==> %s\n' "$*"; }

ENV_NAME=dev REGION="" STACK_NAME="" BUCKET="" PLAN=0 YES=0 DELETE=0 LOCAL=0 STOP=0 BOOTSTRAP=0 REMOVE_RETAINED=0
TEMPLATE_DIR="" OVERRIDE=""
PARAMS=()
# value OPTION ARGS...: the option's value, or a usage error (exit 2) when it is missing.
value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || usage_error "$1 needs a value"; printf '%s' "$2"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --env) ENV_NAME="$(value "$@")" || exit 2; shift 2 ;;
    --region) REGION="$(value "$@")" || exit 2; shift 2 ;;
    --stack-name) STACK_NAME="$(value "$@")" || exit 2; shift 2 ;;
    --bucket) BUCKET="$(value "$@")" || exit 2; shift 2 ;;
    --param) PARAMS+=("$(value "$@")") || exit 2; shift 2 ;;
    --template-dir) TEMPLATE_DIR="$(value "$@")" || exit 2; shift 2 ;;
    --stack-env-override) OVERRIDE="$(value "$@")" || exit 2; shift 2 ;;
    --plan) PLAN=1; shift ;;
    --yes|-y) YES=1; shift ;;
    --delete) DELETE=1; shift ;;
    --local) LOCAL=1; shift ;;
    --stop) STOP=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --bootstrap) BOOTSTRAP=1; shift ;;
    --remove-retained) REMOVE_RETAINED=1; shift ;;
    --push-processor) PUSH_PROCESSOR=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[[ $STOP -eq 1 && $LOCAL -eq 0 ]] && usage_error "--stop only goes with --local"
[[ ${SMOKE:-0} -eq 1 && $LOCAL -eq 0 ]] && usage_error "--smoke only goes with --local"
[[ $STOP -eq 1 && ${SMOKE:-0} -eq 1 ]] && usage_error "--stop and --smoke do not go together (--stop ends the emulator and its stacks)"
[[ $PLAN -eq 1 && $DELETE -eq 1 ]] && usage_error "--plan and --delete do not go together"
(( BOOTSTRAP + REMOVE_RETAINED + DELETE + PLAN <= 1 )) \
  || usage_error "--bootstrap, --remove-retained, --delete and --plan do not go together"
if [[ ${PUSH_PROCESSOR:-0} -eq 1 ]]; then
  [[ $LOCAL -eq 0 ]] || usage_error "--push-processor does not go with --local (the emulator has no registry to push \
to; the local task runner runs processor/ from the working tree)"
  (( BOOTSTRAP + REMOVE_RETAINED + DELETE == 0 )) \
    || usage_error "--push-processor does not go with --bootstrap, --remove-retained or --delete"
  for p in ${PARAMS[@]+"${PARAMS[@]}"}; do
    [[ "$p" != ProcessorImage=* ]] || usage_error "--push-processor sets ProcessorImage itself: drop --param $p"
  done
  command -v docker >/dev/null || refuse "--push-processor needs docker, and there is none on PATH: install Docker \
(or build and push elsewhere, then deploy with --param ProcessorImage=<repository>@sha256:<digest>)"
fi

# --- bad input: refused in one line before anything is installed, started or created ----------------------
# S3's rules for general purpose bucket names:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
bucket_name_problem() {
  local b="$1"
  if (( ${#b} < 3 || ${#b} > 63 )); then echo "must be 3 to 63 characters long"
  elif [[ ! "$b" =~ ^[a-z0-9][a-z0-9.-]*[a-z0-9]$ ]]; then
    echo "may hold only lowercase letters, digits, dots and hyphens, and must begin and end with a letter or digit"
  elif [[ "$b" == *..* ]]; then echo "must not hold two adjacent dots"
  elif [[ "$b" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then echo "must not be formatted as an IP address"
  elif [[ "$b" =~ ^(xn--|sthree-|amzn-s3-demo-) ]]; then echo "must not begin with xn--, sthree- or amzn-s3-demo-"
  elif [[ "$b" =~ (-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$ ]]; then
    echo "must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3"
  fi
}
if [[ -n "$BUCKET" ]]; then
  problem="$(bucket_name_problem "$BUCKET")"
  [[ -z "$problem" ]] || usage_error "--bucket '$BUCKET' is not a valid S3 bucket name: it $problem"
fi
# The shape of every AWS region name (us-east-1, ap-northeast-1, us-gov-west-1, ...); whether it exists is AWS's.
if [[ -n "$REGION" && ! "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$ ]]; then
  usage_error "--region '$REGION' is not an AWS region name such as eu-west-1 or ap-northeast-1"
fi
if [[ -n "$OVERRIDE" && ! "$OVERRIDE" =~ ^[a-z0-9-]+:[a-z0-9-]+$ ]]; then
  usage_error "--stack-env-override '$OVERRIDE' must name the stack's environment and --env: STACK_ENV:ENV, such as dev:staging"
fi
if [[ $LOCAL -eq 1 ]]; then
  port="${LOCAL_AWS_PORT:-4599}"
  [[ "$port" =~ ^[0-9]{1,5}$ ]] && (( 10#$port >= 1024 && 10#$port <= 65535 )) \
    || usage_error "LOCAL_AWS_PORT '$port' is not a port this user can listen on: choose one from 1024 to 65535"
fi
BUILD_DIR="${BUILD_DIR:-build}"

# --- interruption (Ctrl-C, SIGTERM): one line saying what state things are in and what to run next, exit 130 ---
# bash runs a trap only once the foreground command has ended, so every longer step runs in the background and is
# waited for: the trap then runs at once. A step started with `run` ignores SIGINT and SIGTERM (a signal sent to
# the whole process group, as Ctrl-C is, must not make it print a line of its own): the trap ends it with SIGKILL
# and says the state itself ($ON_INTERRUPT). A step started with `run_reporting` (executing or deleting a stack,
# the bootstrap, removing log groups) knows better: it gets SIGTERM, which deploytools' entry points take like
# Ctrl-C (generator.errors.run), and says itself what state it leaves (exit 130).
CHILD="" CHILD_SAYS=0 ON_INTERRUPT="nothing was changed; run ./deploy.sh again"
interrupted() {
  trap '' INT TERM  # one is enough: the clean-up below and the EXIT trap must not be cut short
  local rc=0
  if [[ -n "$CHILD" ]]; then
    if [[ $CHILD_SAYS -eq 1 ]]; then kill -TERM "$CHILD" 2>/dev/null || true; else kill -KILL "$CHILD" 2>/dev/null || true; fi
    wait "$CHILD" 2>/dev/null || rc=$?  # 2>/dev/null: no "Killed" line from bash
  fi
  [[ $CHILD_SAYS -eq 1 && $rc -eq 130 ]] || echo "interrupted: deploy.sh stopped; $ON_INTERRUPT" >&2
  exit 130
}
trap interrupted INT TERM
wait_child() { local rc=0; wait "$CHILD" || rc=$?; CHILD=""; return "$rc"; }
run() { ( trap '' TERM; exec "$@" ) & CHILD=$! CHILD_SAYS=0; wait_child; }
run_reporting() { "$@" & CHILD=$! CHILD_SAYS=1; wait_child; }

# --- tools --------------------------------------------------------------------------------------------------
VENV="$ROOT/.venv"
bootstrap_venv() {
  # dev.sh owns the venv: it installs setup.cfg's dev extra (pinned aws CLI and moto included) on first use
  # or when setup.cfg changed, and is a no-op otherwise.
  command -v python3 >/dev/null || [[ -x "$VENV/bin/python" ]] || refuse "python3 (3.10 or newer) is required"
  ON_INTERRUPT="the project's .venv may be half-installed: run ./dev.sh setup, then ./deploy.sh again"
  run ./dev.sh setup
  ON_INTERRUPT="nothing was changed; run ./deploy.sh again"
}

if [[ $LOCAL -eq 1 ]]; then
  bootstrap_venv
fi
if [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"; else PY="$(command -v python3 || true)"; fi
[[ -n "$PY" ]] || refuse "python3 not found; install Python 3.10+ (or run ./deploy.sh --local to bootstrap .venv)"
PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# The environments and their regions are the generator's (generator/config.py): one `<name> <region>` a line.
ENV_TABLE="$("$PY" -m generator environments)" \
  || refuse "cannot list the environments (python -m generator environments failed); install the project with: \
python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"
ENV_REGION="$(awk -v env="$ENV_NAME" '$1 == env { print $2 }' <<<"$ENV_TABLE")"
if [[ -z "$ENV_REGION" ]]; then
  # "dev, staging or prod"
  choices="$(cut -f1 <<<"$ENV_TABLE" | paste -sd, - | sed 's/,/, /g; s/\(.*\), /\1 or /')"
  usage_error "--env must be $choices, not '$ENV_NAME'"
fi
REGION="${REGION:-$ENV_REGION}"
# Physical names are the generator's (generator/names.py), the defaults of the stack and the bucket included.
names() { "$PY" -m generator.names "$@" || die "cannot compute a name (python -m generator.names $* failed)"; }
STACK_NAME="${STACK_NAME:-$(names stack --env "$ENV_NAME")}"
# One directory per stack: two deploys of different stacks at once (--local tests) never share their files.
OUT_DIR="$BUILD_DIR/$ENV_NAME/$STACK_NAME"
# The parent stack's tags are the generator's for the environment (Environment=<env>, Project=<project>).
read -r -a STACK_TAGS <<<"$("$PY" -c 'import sys; from generator import config
print(" ".join(f"Key={k},Value={v}" for k, v in config.get(sys.argv[1]).tags))' "$ENV_NAME")"

if [[ $LOCAL -eq 1 ]]; then
  export LOCAL_AWS_PORT="${LOCAL_AWS_PORT:-4599}"
  if [[ $STOP -eq 1 ]]; then exec "$PY" -m deploytools.local_aws stop; fi
  if [[ ${SMOKE:-0} -eq 1 ]]; then
    # The smoke needs the emulator a deploy started (and its stacks): a fresh one would hold nothing.
    "$PY" -m deploytools.local_aws status >/dev/null \
      || refuse "no local AWS is running (LOCAL_AWS_PORT $LOCAL_AWS_PORT): deploy first with ./deploy.sh --local, then --smoke"
  else
    step "Starting the local AWS emulator"
    ON_INTERRUPT="the local AWS may be starting or running: ./deploy.sh --local --stop stops it"
    run "$PY" -m deploytools.local_aws start
    ON_INTERRUPT="nothing was changed; the local AWS keeps running (./deploy.sh --local --stop stops it)"
  fi
  export AWS_ENDPOINT_URL="http://localhost:$LOCAL_AWS_PORT"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
  unset AWS_PROFILE AWS_DEFAULT_PROFILE
  YES=1
fi
export AWS_DEFAULT_REGION="$REGION" AWS_REGION="$REGION" AWS_PAGER=""
[[ ${SMOKE:-0} -eq 1 ]] && exec "$PY" -m deploytools.smoke --stack "$STACK_NAME"
missing=()
for tool in aws cfn-lint; do command -v "$tool" >/dev/null || missing+=("$tool"); done
"$PY" -c 'import boto3, deploytools, generator' 2>/dev/null || missing+=("python packages (boto3, this project)")
if [[ ${#missing[@]} -gt 0 ]]; then
  refuse "missing: ${missing[*]}. Install them with: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"
fi
cfn() { run "$PY" -m deploytools.cfn "$@"; }
# awsq WHAT ARGS...: the aws CLI; on failure one line naming WHAT and AWS's message instead of its raw error.
awsq() {
  local what="$1" err; shift
  { err="$(aws "$@" 2>&1 >&3 3>&-)"; } 3>&1 || die "$what failed: $(tr -s '\n' ' ' <<<"$err")"
}

step "Checking credentials"
if [[ $LOCAL -eq 1 ]]; then
  ACCOUNT="$(aws sts get-caller-identity --query Account --output text 2>/dev/null)" \
    || refuse "the local AWS at $AWS_ENDPOINT_URL does not answer; restart it: ./deploy.sh --local --stop, then ./deploy.sh --local"
elif ! ACCOUNT="$(aws sts get-caller-identity --query Account --output text 2>&1)"; then
  [[ "$ACCOUNT" != *"Could not connect to the endpoint URL"* ]] \
    || refuse "cannot reach AWS in region $REGION: check --region (does that region exist?) and the network"
  refuse "no usable AWS credentials for region $REGION: configure a profile (aws configure, AWS_PROFILE) or \
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; or try everything locally with ./deploy.sh --local"
fi
ACCOUNT="${ACCOUNT##*$'\n'}"  # the last line: the CLI may warn on stderr before it
echo "account $ACCOUNT, region $REGION${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL}, stack $STACK_NAME"
# Never one environment's templates over another environment's stack (its Environment tag), --delete included.
cfn check-env --stack "$STACK_NAME" --env "$ENV_NAME" ${OVERRIDE:+--override "$OVERRIDE"} || exit $?
BUCKET="${BUCKET:-$(names artifact-bucket --account "$ACCOUNT" --region "$REGION")}"
UNCHANGED="stack $STACK_NAME was not changed"
[[ $LOCAL -eq 0 ]] || UNCHANGED+=" (the local AWS keeps running: ./deploy.sh --local --stop stops it)"
ON_INTERRUPT="$UNCHANGED; run ./deploy.sh again"

# --- account bootstrap (issue #11): what is one per account and region, never in an environment's stacks -----
# deploytools/bootstrap.py: the ECS service-linked role, API Gateway's CloudWatch role and account setting, the
# artifact bucket. Explicit on AWS (--bootstrap, once per account and region); every --local run (a fresh emulator).
if [[ $BOOTSTRAP -eq 1 || ( $LOCAL -eq 1 && $DELETE -eq 0 && $REMOVE_RETAINED -eq 0 ) ]]; then
  step "Account bootstrap ($ACCOUNT, $REGION)"
  run_reporting "$PY" -m deploytools.bootstrap --bucket "$BUCKET" --region "$REGION" || exit $?
  [[ $BOOTSTRAP -eq 1 ]] && exit 0
fi

# Runs on every exit before a confirmed action: deletes the pending change set, if any (see below).
cleanup() { :; }
trap 'cleanup' EXIT
confirm() {
  [[ $YES -eq 1 ]] && return 0
  [[ -t 0 ]] || die "refusing to $1 without confirmation: no terminal to ask on; pass --yes"
  local answer
  read -r -p "$1? Type 'yes' to continue: " answer
  [[ "$answer" == "yes" ]] || { echo "cancelled: nothing changed"; exit 1; }
}

# --- delete -------------------------------------------------------------------------------------------------
if [[ $DELETE -eq 1 ]]; then
  status="$(cfn stack-status --stack "$STACK_NAME")"
  if [[ "$status" == NONE ]]; then echo "stack $STACK_NAME does not exist: nothing to delete"; exit 0; fi
  step "Deleting $STACK_NAME ($status)"
  cfn retained --stack "$STACK_NAME"
  ON_INTERRUPT="stack $STACK_NAME was not deleted"
  confirm "delete stack $STACK_NAME and its nested stacks"
  ON_INTERRUPT="stack $STACK_NAME may be deleting: CloudFormation carries on without deploy.sh; watch it with \
\`aws cloudformation describe-stacks --stack-name $STACK_NAME\`, then run ./deploy.sh --delete again if it fails"
  run_reporting "$PY" -m deploytools.cfn delete --stack "$STACK_NAME"
  exit $?
fi

# --- retained log groups (issue #11): a re-create after a delete needs their fixed names free ----------------
if [[ $REMOVE_RETAINED -eq 1 ]]; then
  [[ "$(cfn stack-status --stack "$STACK_NAME")" == NONE ]] \
    || refuse "stack $STACK_NAME exists: its log groups are in use, not retained leftovers"
  step "Log groups retained by a deleted $STACK_NAME"
  found="$(run "$PY" -m deploytools.preflight retained-log-groups --template-dir "${TEMPLATE_DIR:-templates/$ENV_NAME}" \
    --region "$REGION")" || exit $?
  if [[ -z "$found" ]]; then echo "none: nothing to remove"; exit 0; fi
  echo "$found"
  echo "Their events are deleted with them; export what you need first (aws logs create-export-task)."
  ON_INTERRUPT="no log group was deleted"
  confirm "delete these log groups"
  ON_INTERRUPT="some of these log groups may be deleted: run ./deploy.sh --remove-retained again for the rest"
  run_reporting "$PY" -m deploytools.preflight remove-retained --template-dir "${TEMPLATE_DIR:-templates/$ENV_NAME}" --region "$REGION"
  exit $?
fi

# --- templates ----------------------------------------------------------------------------------------------
step "Checking templates"
if [[ -z "$TEMPLATE_DIR" ]]; then
  TEMPLATE_DIR="templates/$ENV_NAME"
  run "$PY" -m generator --check --env "$ENV_NAME" || die "templates/$ENV_NAME is stale: run \`python -m generator\`, review and commit templates/, then deploy"
else
  echo "using $TEMPLATE_DIR (not checked against the generator)"
fi
[[ -f "$TEMPLATE_DIR/main.json" ]] || refuse "$TEMPLATE_DIR/main.json not found"
# Errors block the deploy; warnings are shown. W3002: local TemplateURLs are what `package` is for.
run cfn-lint --non-zero-exit-code error --ignore-checks W3002 -- "$TEMPLATE_DIR"/*.json \
  || die "cfn-lint found errors in $TEMPLATE_DIR (above): fix the generator, not the JSON"
mkdir -p "$OUT_DIR"
# --- processor image (issue #23): deploytools/push_processor.py builds processor/, pushes it tagged with the
# commit (a commit already pushed is not rebuilt) and writes the reference by digest, which prod requires.
if [[ ${PUSH_PROCESSOR:-0} -eq 1 ]]; then
  step "Processor image"
  ON_INTERRUPT="$UNCHANGED; an image may be built or partly pushed (harmless): run ./deploy.sh --push-processor again"
  run_reporting "$PY" -m deploytools.push_processor --region "$REGION" --out "$OUT_DIR/processor-image" || exit $?
  PARAMS+=("ProcessorImage=$(cat "$OUT_DIR/processor-image")")
  echo "deploying ${PARAMS[-1]}"
  ON_INTERRUPT="$UNCHANGED; run ./deploy.sh again"
fi
PARAM_ARGS=()
for p in ${PARAMS[@]+"${PARAMS[@]}"}; do PARAM_ARGS+=(--param "$p"); done
cfn params --template "$TEMPLATE_DIR/main.json" --out "$OUT_DIR/parameters.json" ${PARAM_ARGS[@]+"${PARAM_ARGS[@]}"} \
  || exit $?  # its one line says which parameter and what it accepts

status="$(cfn stack-status --stack "$STACK_NAME")"
case "$status" in
  NONE|REVIEW_IN_PROGRESS) CS_TYPE=CREATE ;;
  ROLLBACK_COMPLETE) refuse "stack $STACK_NAME is ROLLBACK_COMPLETE (its first create failed; it holds nothing): \
delete it with ./deploy.sh --delete --env $ENV_NAME, then deploy again" ;;
  *_IN_PROGRESS) refuse "stack $STACK_NAME is $status: another operation is running; wait for it to finish" ;;
  *_FAILED) refuse "stack $STACK_NAME is $status: resolve it in the console first (see its events)" ;;
  *) CS_TYPE=UPDATE ;;
esac

# --- preflight (issue #11): the account against these templates, before anything changes -------------------
# deploytools/preflight.py: bootstrap present, Lambda concurrency, Fargate vCPU quota, retained names that a
# create would collide with, engine version offered. A blocking check exits 2 here; there is no --force.
step "Preflight"
run "$PY" -m deploytools.preflight check --env "$ENV_NAME" --template-dir "$TEMPLATE_DIR" --region "$REGION" \
  --change-set-type "$CS_TYPE" || exit $?
# --plan on a real account (issue #21): IAM Access Analyzer validates every policy of the templates; an error
# blocks like the preflight. The emulator has no Access Analyzer.
if [[ $PLAN -eq 1 ]]; then
  step "IAM Access Analyzer"
  if [[ $LOCAL -eq 1 ]]; then
    echo "access-analyzer: not checked (the local emulator has no IAM Access Analyzer)"
  else
    "$PY" -m deploytools.preflight validate-policies --template-dir "$TEMPLATE_DIR" --region "$REGION" || exit $?
  fi
fi

# --- artifact bucket ----------------------------------------------------------------------------------------
# Created when missing (deploytools/bootstrap.py: encrypted, versioned, public access blocked, TLS-only policy).
step "Artifact bucket s3://$BUCKET"
run_reporting "$PY" -m deploytools.bootstrap --bucket "$BUCKET" --region "$REGION" --only artifact-bucket || exit $?

# --- function packages --------------------------------------------------------------------------------------
# A template names a function's code as a local zip beside it (`functions/<name>.zip`, e.g. the schema tier's
# database bootstrap). Each is built here from generator/functions/<name>/ and its hash-pinned requirements.txt,
# reproducibly (sorted entries, fixed times: the same sources give the same bytes, so an unchanged function is
# no change), into a copy of the templates that `package` then reads and uploads from.
PACKAGE_SRC="$OUT_DIR/src"
rm -rf "$PACKAGE_SRC" && mkdir -p "$PACKAGE_SRC" && cp "$TEMPLATE_DIR"/*.json "$PACKAGE_SRC/"
FUNCTION_CODES="$({ grep -ho '"functions/[a-z0-9_]*\.zip"' "$TEMPLATE_DIR"/*.json || true; } | tr -d '"' | sort -u)"
if [[ -n "$FUNCTION_CODES" ]]; then
  step "Building function packages"
  for code in $FUNCTION_CODES; do
    source_dir="$ROOT/generator/functions/$(basename "$code" .zip)"
    run "$PY" -m deploytools.package_function "$source_dir" "$PACKAGE_SRC/$code" \
      || die "building $code from $source_dir failed (above)"
    echo "$code: sha256 $(sha256sum "$PACKAGE_SRC/$code" | cut -c1-16)"
  done
fi

# --- package ------------------------------------------------------------------------------------------------
step "Packaging into $OUT_DIR/"
# `package` ignores --endpoint-url; it honours AWS_ENDPOINT_URL, which --local exports.
# Its upload progress is noise on success: keep it in a log, show it on failure.
run aws cloudformation package --use-json --template-file "$PACKAGE_SRC/main.json" --s3-bucket "$BUCKET" \
  --s3-prefix "$STACK_NAME" --output-template-file "$OUT_DIR/main.packaged.json" >"$OUT_DIR/package.log" 2>&1 \
  || { cat "$OUT_DIR/package.log" >&2; die "aws cloudformation package failed (above)"; }
echo "children uploaded to s3://$BUCKET/$STACK_NAME/; packaged parent: $OUT_DIR/main.packaged.json"
KEY="$STACK_NAME/main-$(sha256sum "$OUT_DIR/main.packaged.json" | cut -c1-16).json"
awsq "uploading the packaged parent" s3 cp --quiet "$OUT_DIR/main.packaged.json" "s3://$BUCKET/$KEY"
TEMPLATE_URL="${AWS_ENDPOINT_URL:-https://s3.$REGION.amazonaws.com}/$BUCKET/$KEY"

# --- change set ---------------------------------------------------------------------------------------------
CS_NAME="deploy-$(date -u +%Y%m%d-%H%M%S)"
step "Creating change set $CS_NAME ($CS_TYPE)"
drop_change_set() {
  cleanup() { :; }  # once is enough
  aws cloudformation delete-change-set --change-set-name "$CS_ARN" >/dev/null 2>&1 || true
  # A CREATE change set leaves an empty REVIEW_IN_PROGRESS stack behind: remove it too.
  if [[ $CS_TYPE == CREATE && "$(cfn stack-status --stack "$STACK_NAME" 2>/dev/null)" == REVIEW_IN_PROGRESS ]]; then
    aws cloudformation delete-stack --stack-name "$STACK_NAME" >/dev/null 2>&1 || true
  fi
}
# Until it is executed, any exit (refusal, cancel, error, Ctrl-C, SIGTERM) removes the change set it created.
CS_ARN=""
cleanup() { [[ -z "$CS_ARN" ]] || drop_change_set; }
CS_ARN="$(awsq "creating the change set" cloudformation create-change-set --stack-name "$STACK_NAME" --change-set-name "$CS_NAME" \
  --change-set-type "$CS_TYPE" --template-url "$TEMPLATE_URL" --include-nested-stacks \
  --parameters "file://$OUT_DIR/parameters.json" --tags "${STACK_TAGS[@]}" \
  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
  --description "deploy.sh $ENV_NAME $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --query Id --output text)"
ON_INTERRUPT="the change set $CS_NAME was deleted; $UNCHANGED; run ./deploy.sh again"
rc=0; cfn wait-change-set --change-set "$CS_ARN" || rc=$?
if [[ $rc -eq 3 ]]; then
  drop_change_set
  echo "No changes: stack $STACK_NAME already matches $TEMPLATE_DIR and the parameters."
  exit 0
elif [[ $rc -ne 0 ]]; then
  drop_change_set
  die "could not create the change set (reason above)"
fi
cfn summary --change-set "$CS_ARN"

if [[ $PLAN -eq 1 ]]; then
  drop_change_set
  echo "--plan: change set deleted, nothing changed."
  exit 0
fi
confirm "execute this change set on $STACK_NAME"

step "Executing $CS_NAME"
cleanup() { :; }  # from here on the change set belongs to the stack's history
ON_INTERRUPT="stack $STACK_NAME may be updating: CloudFormation carries on without deploy.sh; watch it with \
\`aws cloudformation describe-stacks --stack-name $STACK_NAME\`, then run ./deploy.sh again once it has finished"
run_reporting "$PY" -m deploytools.cfn execute --change-set "$CS_ARN"
if [[ $LOCAL -eq 1 ]]; then
  echo
  echo "The local AWS keeps running at $AWS_ENDPOINT_URL (state in memory). Look around with e.g."
  echo "  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\"
  echo "    .venv/bin/aws cloudformation describe-stacks --region $REGION"
  echo "Stop it with: ./deploy.sh --local --stop"
fi
