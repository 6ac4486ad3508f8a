#!/usr/bin/env bash
# A seeded Neon preview branch for a CI run, with the `ferry` command alone (no stack deployed):
# the GitHub Action (action.yml), the GitLab template (ci/gitlab-preview-branch.yml) and any
# other CI run this script.
#
# Settings (environment):
#   NEON_API_KEY          the Neon API key (required)
#   FERRY_PROJECT         the Neon project id (required)
#   FERRY_BRANCH          the branch name (required)
#   FERRY_MODE            create (default), delete or reset
#   FERRY_PARENT          parent branch of a created branch (default: the project's default)
#   FERRY_EXPIRES_IN      a created branch expires after this long (default 7d)
#   FERRY_SEED            what to restore into a fresh database on the branch: an archive URL
#                         (s3://... or file://...; ferry's snapshots and pg_dump's archives), or
#                         a prefix ending in / holding snapshots (the newest complete one)
#   FERRY_DATABASE        the database the seed goes into (default app)
#   FERRY_MASK            masking rules: refused, `ferry restore --mask` is not built yet
#   FERRY_SUBSET          a subset: refused, `ferry snapshot --subset` is not built yet
#   FERRY_ON_DRIFT        a rerun finds the database seeded and validates it against the seed;
#                         when it differs (tests wrote to it, or a newer snapshot is under a
#                         seed prefix): warn (default: a warning, matches=false) or fail
#   FERRY_DATABASE_URL    false: do not ask for the connection URL with its password
#   AWS_*                 credentials and region for s3:// seeds, as the AWS SDK reads them
# Outputs, one `name=value` line each, appended to $GITHUB_OUTPUT (GitHub Actions), else to
# $FERRY_OUTPUT when set, else printed: branch_id, branch, host, database, connection (the
# neon:// reference, no password), created, restored, matches (the database validated against
# the seed), and database_url (with the password:
# on GitHub it is registered with ::add-mask:: before anything can print it; elsewhere it is
# written only to $GITHUB_OUTPUT/$FERRY_OUTPUT, never printed).
# Run again for the same branch, it finds the branch and its seeded database and validates them
# instead of restoring twice. `delete` succeeds when the branch is already gone.
set -euo pipefail

die() {
  echo "preview-branch: $*" >&2
  exit 1
}
: "${NEON_API_KEY:?preview-branch: NEON_API_KEY is required}"
: "${FERRY_PROJECT:?preview-branch: FERRY_PROJECT is required}"
: "${FERRY_BRANCH:?preview-branch: FERRY_BRANCH is required}"
mode=${FERRY_MODE:-create}
database=${FERRY_DATABASE:-app}
on_drift=${FERRY_ON_DRIFT:-warn}
[[ $on_drift == warn || $on_drift == fail ]] || die "on_drift is warn or fail, not $on_drift"
# A pull request's number left empty (a push or a manual run) would name one branch for all.
[[ $FERRY_BRANCH != */ && $FERRY_BRANCH != *pr- ]] ||
  die "the branch name $FERRY_BRANCH is incomplete (no pull request number?): give branch"
command -v ferry >/dev/null || die "the ferry command is not on PATH"
command -v jq >/dev/null || die "jq is needed to read ferry's JSON output"
[[ -z ${FERRY_MASK:-} ]] || die "mask: masking in the restore stream (ferry restore --mask) is not built yet"
[[ -z ${FERRY_SUBSET:-} ]] || die "subset: consistent subsets (ferry snapshot --subset) are not built yet"

output_file=${GITHUB_OUTPUT:-${FERRY_OUTPUT:-}}
output() {
  # One line each: a line break in a value (a branch name, say) could forge another output.
  [[ $2 != *$'\n'* && $2 != *$'\r'* ]] || die "the $1 output holds a line break"
  if [[ -n $output_file ]]; then
    printf '%s=%s\n' "$1" "$2" >> "$output_file"
  elif [[ $1 != database_url ]]; then
    printf '%s=%s\n' "$1" "$2"
  fi
}

# A ferry command with --json: its output in $result; on failure its error type in $failed.
result= failed=
run() {
  failed=
  if result=$(ferry --json "$@"); then
    return 0
  fi
  failed=$(jq -r '.error.type // "failed"' <<< "$result" 2>/dev/null || echo failed)
  echo "preview-branch: ferry $1 failed ($failed)" >&2
  return 1
}

case $mode in
  delete)
    run branch delete --project "$FERRY_PROJECT" --branch "$FERRY_BRANCH"
    output deleted "$(jq -r '.deleted' <<< "$result")"
    exit 0
    ;;
  reset)
    run branch reset --project "$FERRY_PROJECT" --branch "$FERRY_BRANCH"
    out=$result
    ;;
  create)
    args=(branch create --project "$FERRY_PROJECT" --name "$FERRY_BRANCH" --expires-in "${FERRY_EXPIRES_IN:-7d}")
    [[ -z ${FERRY_PARENT:-} ]] || args+=(--parent "$FERRY_PARENT")
    run "${args[@]}"
    out=$result
    ;;
  *) die "mode is create, delete or reset, not $mode" ;;
esac

branch_id=$(jq -r '.branch.branchId' <<< "$out")
role=$(jq -r '.branch.role // empty' <<< "$out")
[[ -n $role ]] || die "the branch has no role to connect as"
created=$(jq -r '.created' <<< "$out")
output branch_id "$branch_id"
output branch "$(jq -r '.branch.name' <<< "$out")"
output host "$(jq -r '.branch.endpointHost // empty' <<< "$out")"
output created "$created"

restored=false
matches=
if [[ -n ${FERRY_SEED:-} ]]; then
  output database "$database"
  connection="neon://$FERRY_PROJECT/$branch_id/$database?role=$role"
  # A prefix holding ferry's snapshots (the newest complete one), or an archive: a file, or a
  # pg_dump directory archive (a prefix with no snapshot under it).
  manifest=
  latest=false
  if [[ $FERRY_SEED == */ ]] && run snapshots list --from "$FERRY_SEED"; then
    manifest=$(jq -r '.snapshots[0].manifest // empty' <<< "$result")
    [[ -z $manifest ]] || latest=true
  fi
  restore=(restore --neon-project "$FERRY_PROJECT" --branch "$FERRY_BRANCH" --database "$database")
  if [[ $latest == true ]]; then
    restore+=(--from "$FERRY_SEED" --latest)
  else
    restore+=(--from "$FERRY_SEED")
  fi
  rerun=false
  if run "${restore[@]}"; then
    restored=true
    [[ $latest != true ]] || manifest=$(jq -r '.snapshot // empty' <<< "$result")
  elif [[ $failed == Ferry.TargetNotEmpty && $created == true ]]; then
    die "the new branch already holds a database $database (its parent's): give another database"
  elif [[ $failed == Ferry.TargetNotEmpty ]]; then
    # Seeded by an earlier run for this branch: validation says whether it is still the seed.
    echo "preview-branch: $database on $FERRY_BRANCH is seeded already; validating it" >&2
    rerun=true
  else
    exit 1
  fi
  # Against the seed's manifest when it has one (a ferry snapshot), else the archive itself.
  if [[ -z $manifest && $FERRY_SEED != */ ]] && run snapshots list --from "${FERRY_SEED%/*}/"; then
    manifest=$(jq -r --arg archive "$FERRY_SEED" \
      '[.snapshots[] | select(.archive == $archive)][0].manifest // empty' <<< "$result")
  fi
  if run validate --source "${manifest:-$FERRY_SEED}" --target "$connection" --checksums; then
    matches=true
  else
    [[ -z $failed || $failed == failed ]] || exit 1
    matches=false
    # Names as JSON strings: a line break in one must not forge a line (a workflow command).
    jq -r '.differences[]? | "  \(.check) \(.object | @json)"' <<< "$result" >&2 || true
    if [[ $rerun == false || $on_drift == fail ]]; then
      die "$database on $FERRY_BRANCH does not match the seed"
    fi
    echo "::warning::$database on $FERRY_BRANCH no longer matches the seed (written to since it was seeded, or a newer seed): it was left as it is"
  fi
else
  database=$(jq -r '.branch.database // empty' <<< "$out")
  output database "$database"
  connection=$(jq -r '.branch.connection // empty' <<< "$out")
fi
output connection "$connection"
output restored "$restored"
output matches "$matches"

if [[ ${FERRY_DATABASE_URL:-true} != false ]]; then
  url=$(ferry branch url --connection "$connection")
  if [[ ${GITHUB_ACTIONS:-} == true ]]; then
    # The URL, and the password alone (as written and percent-decoded): a tool that rewrites
    # the URL must not show it either. A workflow command's data escapes %, CR and LF.
    mask() {
      local value=${1//%/%25}
      value=${value//$'\r'/%0D}
      echo "::add-mask::${value//$'\n'/%0A}"
    }
    mask "$url"
    userinfo=${url#*://}
    userinfo=${userinfo%%@*}
    if [[ $userinfo == *:* ]]; then
      password=${userinfo#*:}
      mask "$password"
      decoded=$(printf '%b' "${password//%/\\x}")
      [[ $decoded == "$password" ]] || mask "$decoded"
    fi
  fi
  output database_url "$url"
fi
