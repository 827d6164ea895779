#!/bin/sh
# Checks the compiled library for what would break on Android: class files newer
# than Java 8, android.* references (the core must not need them) and JDK APIs
# that Android lacks or added after API level 21.
set -eu
dir="$1"
javap="${2:-javap}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
find "$dir" -name '*.class' -print0 | xargs -0 "$javap" -c -p -v >"$out"
if grep -q 'major version: \(5[3-9]\|6[0-9]\)' "$out"; then
	echo "check-api: class files newer than Java 8" >&2; exit 1
fi
bad='android/|java/util/function/|java/util/stream/|java/util/Optional|java/util/concurrent/CompletableFuture|java/time/|java/lang/invoke/StringConcatFactory|java/lang/String\.join|java/util/Map\.(getOrDefault|putIfAbsent|computeIfAbsent|forEach|merge)|java/lang/(Integer|Long)\.(toUnsigned|compareUnsigned|divideUnsigned|hashCode:\(J\))|java/lang/Math\.(floorMod|floorDiv|addExact|multiplyExact|toIntExact)|java/util/concurrent/ThreadLocalRandom|java/util/Objects\.requireNonNullElse|setRemoveOnCancelPolicy|java/lang/Iterable\.forEach|java/util/Collection\.(stream|removeIf)|java/util/List\.(sort|of)|java/util/Base64|java/nio/file/'
if grep -En "$bad" "$out" >&2; then
	echo "check-api: the lines above use APIs that Android (API 21) lacks" >&2; exit 1
fi
echo "check-api: Java 8 class files, no android.* and no post-API-21 JDK calls"
