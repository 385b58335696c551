# shellcheck shell=bash
# Sourced by last_finished_run.sh and champion.sh (not run by itself): the settings MLflow's own clients read from
# the environment, one-line errors with the exit codes of docs/rest.md, and `request`: one call to the tracking
# server's REST API with curl, its transport and authentication failures already turned into those errors.

# Exit codes, the same in both scripts (docs/rest.md#exit-codes).
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly EXIT_USAGE=2         # bad arguments or settings, curl or jq missing
readonly EXIT_NONE_FINISHED=3 # no FINISHED run of the step; no version behind the alias
readonly EXIT_SERVER=4        # server unreachable, timed out, or an answer that is not what the API promises
readonly EXIT_REFUSED=5       # HTTP 401 (credentials) or 403 (permission)
readonly EXIT_NO_SUCH=6       # no such experiment; no such registered model
readonly EXIT_NO_ARTIFACT=7   # the run has no such artifact
readonly EXIT_WRITE=8         # the output cannot be written

PROG=$(basename "$0")

die() { # die CODE MESSAGE: the message as one line on stderr, then exit CODE
  printf '%s: %s\n' "$PROG" "$(printf '%s' "$2" | tr '\r\n\t' '   ')" >&2
  exit "$1"
}

for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$EXIT_USAGE" "$tool is not installed (this script needs curl and jq)"
done

[[ -n ${MLFLOW_TRACKING_URI:-} ]] || die "$EXIT_USAGE" "set MLFLOW_TRACKING_URI to the tracking server, e.g. http://127.0.0.1:5000"
case $MLFLOW_TRACKING_URI in
  http://* | https://*) ;;
  *) die "$EXIT_USAGE" "MLFLOW_TRACKING_URI must be an http(s):// tracking server for the REST API, not '${MLFLOW_TRACKING_URI%%:*}:...'" ;;
esac
BASE_URL=${MLFLOW_TRACKING_URI%/}
# The server as messages show it: without a password written into the URI.
SHOWN_URL=$(printf '%s' "$BASE_URL" | sed -E 's#^(https?://)[^/@]*@#\1***@#')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlflow-rest.XXXXXX")
CLEANUP=("$WORK") # removed on exit, whatever happens (a script adds its half-written outputs)
trap 'rm -rf -- "${CLEANUP[@]}"' EXIT

# Credentials go to curl through a config file only this user can read, never on its command line (where `ps` shows
# them). Basic auth (MLflow's basic-auth app) or a bearer token, as MLflow's clients do.
CURL_CONFIG=$WORK/curl.config
(
  umask 077
  : >"$CURL_CONFIG"
)
curl_quote() { # a value as a double-quoted string of curl's config syntax
  local value=${1//\\/\\\\}
  printf '"%s"' "${value//\"/\\\"}"
}
if [[ -n ${MLFLOW_TRACKING_USERNAME:-} || -n ${MLFLOW_TRACKING_PASSWORD:-} ]]; then
  [[ -n ${MLFLOW_TRACKING_USERNAME:-} && -n ${MLFLOW_TRACKING_PASSWORD:-} ]] ||
    die "$EXIT_USAGE" "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither"
  printf 'user = %s\n' "$(curl_quote "$MLFLOW_TRACKING_USERNAME:$MLFLOW_TRACKING_PASSWORD")" >>"$CURL_CONFIG"
elif [[ -n ${MLFLOW_TRACKING_TOKEN:-} ]]; then
  printf 'header = %s\n' "$(curl_quote "Authorization: Bearer $MLFLOW_TRACKING_TOKEN")" >>"$CURL_CONFIG"
fi
CURL_ARGS=(--silent --show-error --config "$CURL_CONFIG" --connect-timeout "${MLFLOW_REST_CONNECT_TIMEOUT:-10}"
  --retry "${MLFLOW_REST_RETRIES:-2}" --retry-delay 1)
if [[ ${MLFLOW_TRACKING_INSECURE_TLS:-false} == true ]]; then CURL_ARGS+=(--insecure); fi
if [[ -n ${MLFLOW_TRACKING_SERVER_CERT_PATH:-} ]]; then CURL_ARGS+=(--cacert "$MLFLOW_TRACKING_SERVER_CERT_PATH"); fi
if [[ -n ${MLFLOW_TRACKING_CLIENT_CERT_PATH:-} ]]; then CURL_ARGS+=(--cert "$MLFLOW_TRACKING_CLIENT_CERT_PATH"); fi

urlencode() { jq -rn --arg value "$1" '$value | @uri'; }

HTTP_STATUS=
RESPONSE=$WORK/response

# request METHOD PATH_AND_QUERY [JSON_BODY] [OUTPUT_FILE]: sets HTTP_STATUS and leaves the body in OUTPUT_FILE
# (default $RESPONSE). An unreachable server is EXIT_SERVER; 401 and 403 are EXIT_REFUSED; any other status is for
# the caller to judge (`unexpected` for those it does not expect). API calls time out after
# MLFLOW_HTTP_REQUEST_TIMEOUT seconds (MLflow's own setting, default 120); downloads (an OUTPUT_FILE) do not.
request() {
  local method=$1 path=$2 body=${3-} output=${4:-$RESPONSE}
  local args=("${CURL_ARGS[@]}" --request "$method" --output "$output" --write-out '%{http_code}')
  if [[ -n $body ]]; then args+=(--header 'Content-Type: application/json' --data-binary "$body"); fi
  if [[ $output == "$RESPONSE" ]]; then args+=(--max-time "${MLFLOW_HTTP_REQUEST_TIMEOUT:-120}"); fi
  if ! HTTP_STATUS=$(curl "${args[@]}" "$BASE_URL$path" 2>"$WORK/curl.err"); then
    local reason
    reason=$(grep -v '^[[:space:]]*$' "$WORK/curl.err" | tail -n 1) || reason=
    die "$EXIT_SERVER" "cannot reach the tracking server $SHOWN_URL: ${reason:-curl failed}"
  fi
  case $HTTP_STATUS in
    401) die "$EXIT_REFUSED" "the tracking server $SHOWN_URL refused the credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user it knows" ;;
    403) die "$EXIT_REFUSED" "the tracking server $SHOWN_URL denied ${MLFLOW_TRACKING_USERNAME:-this user} access (HTTP 403): $(server_message "$output")" ;;
  esac
}

server_message() { # the `message` of an MLflow error answer, else the start of the body
  local file=${1:-$RESPONSE} message
  message=$(jq -r '(.message // .detail // empty) | tostring' "$file" 2>/dev/null) || message=
  [[ -n $message ]] || message=$(head -c 300 "$file" 2>/dev/null | tr -s '\r\n\t ' ' ')
  printf '%s' "${message:-(empty answer)}"
}

unexpected() { # unexpected WHAT [FILE]: the server answered WHAT with a status the API does not promise
  die "$EXIT_SERVER" "the tracking server $SHOWN_URL answered $1 with HTTP $HTTP_STATUS: $(server_message "${2:-$RESPONSE}")"
}

mlflow_error() { # mlflow_error CODE...: the answer is an MLflow error with one of these error codes
  local code
  code=$(jq -r '.error_code // empty' "$RESPONSE" 2>/dev/null) || return 1
  [[ -n $code && " $* " == *" $code "* ]]
}

json_answer() { # the answer must be JSON (an HTML page means MLFLOW_TRACKING_URI is not an MLflow server)
  jq -e . "$RESPONSE" >/dev/null 2>&1 ||
    die "$EXIT_SERVER" "the tracking server $SHOWN_URL answered $1 with something other than JSON: is MLFLOW_TRACKING_URI an MLflow tracking server?"
}
