#!/usr/bin/env bash
# Runs every test twice: against the optimised build, then against the
# AddressSanitizer + UBSan build (leaks fail too). Ends with one line CI reads:
# "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
passed=0
failed=0
log=$(mktemp)

count_unit() { # from the runner's "unit: N passed, M failed"
	local line
	line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
	passed=$((passed + $(echo "$line" | sed -E 's/^unit: ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(echo "$line" | sed -E 's/.*, ([0-9]+) failed/\1/')))
}

count_node() { # from node's TAP "# pass N" / "# fail N"
	local p f
	p=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
	f=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
	if [ -z "$p" ]; then failed=$((failed + 1)); return; fi
	passed=$((passed + p))
	failed=$((failed + ${f:-0}))
}

run_suite() { # name, command...
	local name=$1
	shift
	echo "== $name"
	"$@" >"$log" 2>&1
	local rc=$?
	if [ "$name" != "${name#unit}" ]; then
		grep -E '^(ok|FAIL|    )' "$log" | grep -vE '^ok ' || true
		count_unit
	else
		grep -E '^not ok|^# (pass|fail)' "$log" || true
		count_node
		if grep -q '^not ok' "$log"; then
			echo "-- failures:"
			awk '/^not ok/{p=1} p{print} /^  \.\.\.$/{p=0}' "$log" | head -150
		fi
	fi
	[ $rc -eq 0 ] || echo "   ($name exited $rc)"
	tail -1 "$log" | sed 's/^/   /'
}

integration=(tests/integration/*.test.mjs)
run_suite "unit" ./build/unit
run_suite "integration" env AIMAAS_BIN=build/aimaas AIMAAS_SIM_BIN=build/aimaas-sim node --test --test-reporter=tap "${integration[@]}"
run_suite "unit (asan+ubsan)" ./build/asan/unit
run_suite "integration (asan+ubsan)" env AIMAAS_BIN=build/asan/aimaas AIMAAS_SIM_BIN=build/asan/aimaas-sim node --test --test-reporter=tap "${integration[@]}"
rm -f "$log"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
