#!/bin/sh
# One-shot, once the server answers: create Tally's namespace and register the search attributes
# operators use to find a customer's or a day's workflows (workflows/search-attributes.ts).
# Runs in temporalio/admin-tools, which ships the temporal CLI. Safe to re-run: existing ones are kept.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is the Temporal frontend, host:port}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
# Closed workflows stay visible in the UI for a billing month and a bit.
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-35d}"
ATTEMPTS="${TEMPORAL_SETUP_ATTEMPTS:-60}"

# retry <what> <command...>: the frontend answers before its namespace and search-attribute caches catch up.
retry() {
  what=$1
  shift
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "gave up: $what, after $attempt attempts" >&2
      exit 1
    fi
    echo "not yet: $what (attempt $attempt/$ATTEMPTS)"
    attempt=$((attempt + 1))
    sleep 2
  done
}

ensure_namespace() {
  temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1 \
    || temporal operator namespace create --address "$ADDRESS" --namespace "$NAMESPACE" --retention "$RETENTION"
}

has_search_attribute() {
  temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" | grep -qw "$1"
}

# ensure_search_attribute <name> <type>
ensure_search_attribute() {
  has_search_attribute "$1" \
    || temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" --name "$1" --type "$2"
}

retry 'Temporal cluster health' temporal operator cluster health --address "$ADDRESS"
retry "namespace $NAMESPACE" ensure_namespace
retry 'search attribute OrgId' ensure_search_attribute OrgId Keyword
retry 'search attribute BillingDay' ensure_search_attribute BillingDay Keyword
# api and worker start when this exits: wait until the server lists what they will set.
retry 'OrgId listed' has_search_attribute OrgId
retry 'BillingDay listed' has_search_attribute BillingDay
echo "Namespace $NAMESPACE ready with search attributes OrgId, BillingDay"
