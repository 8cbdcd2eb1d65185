#!/usr/bin/env bash
# Bans the C functions that overflow buffers, parse without errors or run a
# shell: strcpy, sprintf, strcat, atoi, gets, system, popen.
set -u
cd "$(dirname "$0")/.."
hits=$(grep -rnE '\b(strcpy|sprintf|strcat|atoi|gets|system|popen)\s*\(' src sim 2>/dev/null |
	grep -vE '^\S+:\s*(/\*|\*)' || true)
if [ -n "$hits" ]; then
	echo "lint: banned functions in src/:"
	echo "$hits"
	exit 1
fi
echo "lint: ok"
