#!/usr/bin/env bash
# The newest FINISHED run of a pipeline step, found as the pipeline's own upstream lookup finds it
# (pipeline/tracking/lookup.py), and one of its artifacts downloaded through the tracking server: curl and jq only,
# for callers that are not Python. Prints the run id on stdout; docs/rest.md holds the requests and the exit codes.
#
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
#   run_id=$(examples/rest/last_finished_run.sh preprocess data/schema.json schema.json)
#
# Environment: MLFLOW_TRACKING_URI (an http(s):// server); MLFLOW_EXPERIMENT_ID, else MLFLOW_EXPERIMENT_NAME (default
# Default), as the steps choose theirs; MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (basic auth) or
# MLFLOW_TRACKING_TOKEN. An artifact that is a folder (data/train.parquet on engine dask: part files) is downloaded as
# a folder, to an OUT_FILE that must not exist yet; a file replaces OUT_FILE once complete.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($# == 3)) || die "$EXIT_USAGE" "usage: $PROG STEP ARTIFACT_PATH OUT_FILE (e.g. preprocess data/schema.json schema.json)"
STEP=$1 ARTIFACT=$2 OUT=$3
[[ $STEP =~ ^[A-Za-z0-9_.-]+$ ]] || die "$EXIT_USAGE" "STEP must be a step name such as preprocess, not '$STEP'"
ARTIFACT=${ARTIFACT#./}
while [[ $ARTIFACT == */ ]]; do ARTIFACT=${ARTIFACT%/}; done
case "/$ARTIFACT/" in
  *//* | */../* | */./*) die "$EXIT_USAGE" "ARTIFACT_PATH must be a path inside the run, such as data/schema.json, not '$2'" ;;
esac
[[ -n $OUT ]] || die "$EXIT_USAGE" "OUT_FILE is empty"

# 1. The experiment: by id when MLFLOW_EXPERIMENT_ID is set (it wins in the steps too), else by name.
if [[ -n ${MLFLOW_EXPERIMENT_ID:-} ]]; then
  wanted="id $MLFLOW_EXPERIMENT_ID"
  request GET "/api/2.0/mlflow/experiments/get?experiment_id=$(urlencode "$MLFLOW_EXPERIMENT_ID")"
else
  wanted="'${MLFLOW_EXPERIMENT_NAME:-Default}'"
  request GET "/api/2.0/mlflow/experiments/get-by-name?experiment_name=$(urlencode "${MLFLOW_EXPERIMENT_NAME:-Default}")"
fi
case $HTTP_STATUS in
  200) json_answer "the experiment lookup" ;;
  400 | 404)
    mlflow_error RESOURCE_DOES_NOT_EXIST INVALID_PARAMETER_VALUE || unexpected "the experiment lookup"
    die "$EXIT_NO_SUCH" "no experiment $wanted on $SHOWN_URL: set MLFLOW_EXPERIMENT_NAME (or MLFLOW_EXPERIMENT_ID) to the pipeline's experiment"
    ;;
  *) unexpected "the experiment lookup" ;;
esac
EXPERIMENT_ID=$(jq -r '.experiment.experiment_id' "$RESPONSE")
EXPERIMENT_NAME=$(jq -r '.experiment.name' "$RESPONSE")
if [[ $(jq -r '.experiment.lifecycle_stage' "$RESPONSE") == deleted ]]; then
  die "$EXIT_NO_SUCH" "experiment '$EXPERIMENT_NAME' (id $EXPERIMENT_ID) on $SHOWN_URL is deleted"
fi

# 2. The run: the very query of pipeline/tracking/lookup.py's latest_finished_run (filter, order, one result).
search=$(jq -nc --arg experiment "$EXPERIMENT_ID" --arg step "$STEP" '{
  experiment_ids: [$experiment],
  filter: "tags.`pipeline.step` = '\''\($step)'\'' and attributes.status = '\''FINISHED'\''",
  order_by: ["attributes.end_time DESC"],
  max_results: 1,
  run_view_type: "ACTIVE_ONLY"
}')
request POST /api/2.0/mlflow/runs/search "$search"
[[ $HTTP_STATUS == 200 ]] || unexpected "the run search"
json_answer "the run search"
RUN_ID=$(jq -r '.runs[0].info.run_id // empty' "$RESPONSE")
[[ -n $RUN_ID ]] || die "$EXIT_NONE_FINISHED" "no finished '$STEP' run in experiment '$EXPERIMENT_NAME' (id $EXPERIMENT_ID); create one with \`mlflow run . -e $STEP --env-manager local\`"
ARTIFACT_URI=$(jq -r '.runs[0].info.artifact_uri' "$RESPONSE")
# engine dask with data.output_uri: the splits lie outside the run, where the tag pipeline.split_uri.<split> says.
SPLIT_URI=$(jq -r --arg path "$ARTIFACT" '[(.runs[0].data.tags // [])[]
  | select(.key | startswith("pipeline.split_uri."))
  | select("data/\(.key | ltrimstr("pipeline.split_uri.")).parquet" == $path) | .value][0] // empty' "$RESPONSE")

# 3. What the path is: listed in its parent folder as a file, a folder, or not at all.
list_artifacts() { # list_artifacts PATH: the run's artifacts directly under PATH ("" = the root), in $RESPONSE
  local query
  query="run_id=$(urlencode "$RUN_ID")"
  [[ -z $1 ]] || query+="&path=$(urlencode "$1")"
  request GET "/api/2.0/mlflow/artifacts/list?$query"
  [[ $HTTP_STATUS == 200 ]] || unexpected "the artifact list of run $RUN_ID"
  json_answer "the artifact list of run $RUN_ID"
}
parent=
[[ $ARTIFACT != */* ]] || parent=${ARTIFACT%/*}
list_artifacts "$parent"
KIND=$(jq -r --arg path "$ARTIFACT" '(.files // [])[] | select(.path == $path) | if .is_dir then "folder" else "file" end' "$RESPONSE")
if [[ -z $KIND ]]; then
  [[ -z $SPLIT_URI ]] || die "$EXIT_NO_ARTIFACT" "$STEP run $RUN_ID has no artifact '$ARTIFACT': that split was written to $SPLIT_URI (tag pipeline.split_uri.*), outside the run"
  die "$EXIT_NO_ARTIFACT" "$STEP run $RUN_ID has no artifact '$ARTIFACT'"
fi

# 4. The download, through the server: its mlflow-artifacts proxy for a proxied artifact root, else /get-artifact
# (which serves any artifact root the server itself can read).
encode_path() { jq -rn --arg path "$1" '$path | split("/") | map(@uri) | join("/")'; }
artifact_url() { # artifact_url PATH: where the server serves that file of the run
  if [[ $ARTIFACT_URI == mlflow-artifacts:* ]]; then
    local root=${ARTIFACT_URI#mlflow-artifacts:}
    if [[ $root == //* ]]; then # mlflow-artifacts://host:port/<path>: the path is what counts
      root=${root#//}
      root=${root#*/}
    fi
    printf '/api/2.0/mlflow-artifacts/artifacts/%s' "$(encode_path "${root#/}/$1")"
  else
    printf '/get-artifact?path=%s&run_id=%s' "$(urlencode "$1")" "$(urlencode "$RUN_ID")"
  fi
}
fetch_file() { # fetch_file PATH DEST
  request GET "$(artifact_url "$1")" "" "$2"
  case $HTTP_STATUS in
    200) ;;
    404) die "$EXIT_NO_ARTIFACT" "$STEP run $RUN_ID has no artifact '$1': $(server_message "$2")" ;;
    *) unexpected "the download of '$1' of run $RUN_ID" "$2" ;;
  esac
}

out_dir=$(dirname -- "$OUT")
out_name=$(basename -- "$OUT")
mkdir -p -- "$out_dir" 2>/dev/null || die "$EXIT_WRITE" "cannot create the folder '$out_dir' for OUT_FILE"
mode=$((0777 & ~0$(umask)))
if [[ $KIND == file ]]; then
  [[ ! -d $OUT ]] || die "$EXIT_WRITE" "OUT_FILE '$OUT' is a folder: give the file's name"
  tmp=$(mktemp "$out_dir/.$out_name.XXXXXX" 2>/dev/null) || die "$EXIT_WRITE" "cannot write in the folder '$out_dir'"
  CLEANUP+=("$tmp")
  fetch_file "$ARTIFACT" "$tmp"
  chmod "$(printf '%o' $((mode & 0666)))" "$tmp"
else
  [[ ! -e $OUT && ! -L $OUT ]] ||
    die "$EXIT_WRITE" "'$ARTIFACT' of $STEP run $RUN_ID is a folder and '$OUT' already exists: remove it, or give another OUT_FILE"
  tmp=$(mktemp -d "$out_dir/.$out_name.XXXXXX" 2>/dev/null) || die "$EXIT_WRITE" "cannot write in the folder '$out_dir'"
  CLEANUP+=("$tmp")
  files=()
  pending=("$ARTIFACT")
  while ((${#pending[@]})); do # the folder's tree, one listing per folder
    folder=${pending[0]}
    pending=("${pending[@]:1}")
    list_artifacts "$folder"
    while IFS=$'\t' read -r kind path; do
      if [[ $kind == folder ]]; then pending+=("$path"); else files+=("$path"); fi
    done < <(jq -r '(.files // [])[] | [(if .is_dir then "folder" else "file" end), .path] | @tsv' "$RESPONSE")
  done
  for path in "${files[@]}"; do
    relative=${path#"$ARTIFACT"/}
    mkdir -p -- "$tmp/$(dirname -- "$relative")"
    fetch_file "$path" "$tmp/$relative"
  done
  chmod -R "$(printf '%o' "$mode")" "$tmp"
  find "$tmp" -type f -exec chmod "$(printf '%o' $((mode & 0666)))" {} +
fi
mv -f -- "$tmp" "$OUT" 2>/dev/null || die "$EXIT_WRITE" "cannot write '$OUT'"
printf '%s\n' "$RUN_ID"
