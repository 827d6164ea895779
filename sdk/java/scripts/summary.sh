#!/bin/sh
# Turns the JUnit console launcher's summary (file $1) into the plain line
# "java-sdk: N passed, N failed, N skipped". Tests of a class whose setup was
# skipped (an assumption in @BeforeAll) are found but never started: they
# count as skipped.
awk '
/tests found/       { found = $2 }
/tests started/     { started = $2 }
/tests successful/  { ok = $2 }
/tests failed/      { bad = $2 }
/tests aborted/     { aborted = $2 }
/tests skipped/     { skipped = $2 }
/containers failed/ { cbad = $2 }
END {
	if (ok == "" && bad == "") { exit 1 }
	printf "java-sdk: %d passed, %d failed, %d skipped\n", ok, bad + cbad, skipped + aborted + (found - started)
}' "$1"
