#!/bin/sh
# Makes sure the JUnit 5 console launcher is present: Debian's junit5 package
# provides /usr/share/java/junit-platform-console-standalone.jar. Maven Central
# is not reachable here, so the jar comes from apt. Uses sudo only if not root.
set -eu
jar="${1:-/usr/share/java/junit-platform-console-standalone.jar}"
[ -f "$jar" ] && exit 0
echo "sdk/java: $jar missing; installing Debian package junit5" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "sdk/java: apt-get not found; install JUnit 5's console launcher and pass JUNIT_JAR=path" >&2
	exit 1
fi
# Try without an index refresh first (fast when the lists are current).
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q junit5 >/dev/null 2>&1 || {
	$sudo apt-get update -q >/dev/null
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q junit5 >/dev/null
}
[ -f "$jar" ] || { echo "sdk/java: junit5 installed but $jar is still missing" >&2; exit 1; }
