#!/usr/bin/env bash
# The registered model version behind an alias (default @champion), through the tracking server's REST API: curl and
# jq only, for callers that are not Python. Prints one JSON object on one line: the model's name, the alias, the
# version, its run id (the train run that logged it), its status, and the pipeline's tags on the version: the runs
# behind it (pipeline.preprocess_run, pipeline.tune_run, pipeline.train_run, pipeline.evaluate_run) and the verdict.
# docs/rest.md holds the requests and the exit codes.
#
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
#   examples/rest/champion.sh                          # breast-cancer-xgb @champion (configs/pipeline.yaml's registry)
#   examples/rest/champion.sh churn-xgb challenger | jq -r .version
#
# Environment: MLFLOW_TRACKING_URI (an http(s):// server); MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (basic
# auth) or MLFLOW_TRACKING_TOKEN.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($# <= 2)) || die "$EXIT_USAGE" "usage: $PROG [MODEL_NAME] [ALIAS] (default: breast-cancer-xgb champion)"
MODEL=${1:-breast-cancer-xgb} # registry.model_name of configs/pipeline.yaml
ALIAS=${2:-champion}          # registry.champion_alias
[[ -n $MODEL && -n $ALIAS ]] || die "$EXIT_USAGE" "MODEL_NAME and ALIAS must not be empty"

request GET "/api/2.0/mlflow/registered-models/alias?name=$(urlencode "$MODEL")&alias=$(urlencode "$ALIAS")"
case $HTTP_STATUS in
  200) json_answer "the alias lookup" ;;
  400 | 404)
    # Either the model or the alias is missing (MLflow answers 404 for the first, 400 for the second): ask.
    [[ $ALIAS != champion ]] || hint=": evaluate sets it when it promotes a version"
    request GET "/api/2.0/mlflow/registered-models/get?name=$(urlencode "$MODEL")"
    case $HTTP_STATUS in
      200) die "$EXIT_NONE_FINISHED" "registered model '$MODEL' has no version at @$ALIAS on $SHOWN_URL${hint:-}" ;;
      404)
        mlflow_error RESOURCE_DOES_NOT_EXIST || unexpected "the registered model lookup"
        die "$EXIT_NO_SUCH" "no registered model '$MODEL' on $SHOWN_URL: name the model of the config's registry.model_name"
        ;;
      *) unexpected "the registered model lookup" ;;
    esac
    ;;
  *) unexpected "the alias lookup" ;;
esac

jq -c --arg alias "$ALIAS" '.model_version | {
  name,
  alias: $alias,
  version,
  run_id,
  status,
  tags: ((.tags // []) | map(select(.key | startswith("pipeline."))) | from_entries)
}' "$RESPONSE"
