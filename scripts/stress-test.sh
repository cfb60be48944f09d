#!/usr/bin/env bash
# The whole `make test` with the CPU saturated beside it, the way a shared CI machine runs it: no test may
# pass only on an idle machine (docs/DEVELOPMENT.md, "The suite under load").
#
#   scripts/stress-test.sh                 # once, with `stress-ng --cpu 2` beside it
#   scripts/stress-test.sh --runs 2        # twice in a row (stops at the first failing run)
#   scripts/stress-test.sh --cpu 4 -- -k "pipeline or liveness"   # more load; arguments after -- go to pytest
#
# stress-ng (Debian package) is installed when missing. Each run's output is kept in .stress/run-<n>.log;
# the last line says PASS or FAIL with the run times. Exit status: 0 when every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
cpu=2
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v stress-ng >/dev/null; then
  echo "installing stress-ng (Debian package)…"
  sudo_=""
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
fi

mkdir -p .stress
stress_pid=""
stop_stress() {
  if [ -n "$stress_pid" ]; then
    kill -TERM -- "-$stress_pid" 2>/dev/null || kill -TERM "$stress_pid" 2>/dev/null || true
    wait "$stress_pid" 2>/dev/null || true
    stress_pid=""
  fi
}
trap stop_stress EXIT INT TERM

results=()
status=0
for n in $(seq 1 "$runs"); do
  # its own process group, so that stopping it stops every worker
  setsid stress-ng --cpu "$cpu" --timeout 0 --quiet &
  stress_pid=$!
  echo "run $n/$runs: make test with stress-ng --cpu $cpu beside it (log: .stress/run-$n.log)"
  start=$(date +%s)
  set +e
  joined=""
  [ ${#pytest_args[@]} -gt 0 ] && printf -v joined '%q ' "${pytest_args[@]}"
  make test PYTEST_ARGS="$joined" >".stress/run-$n.log" 2>&1
  rc=$?
  set -e
  stop_stress
  took=$(( $(date +%s) - start ))
  summary=$(grep -E "^(FAILED|ERROR) |[0-9]+ (passed|failed)" ".stress/run-$n.log" | tail -n 20 || true)
  if [ "$rc" -eq 0 ]; then
    results+=("run $n: PASS in ${took}s")
  else
    results+=("run $n: FAIL (exit $rc) in ${took}s")
    status=1
  fi
  echo "${results[-1]}"
  [ -n "$summary" ] && echo "$summary"
  [ "$status" -ne 0 ] && break
done

printf '%s\n' "${results[@]}"
if [ "$status" -eq 0 ]; then
  echo "PASS: $runs run(s) of make test under stress-ng --cpu $cpu"
else
  echo "FAIL: see .stress/run-${#results[@]}.log"
fi
exit "$status"
