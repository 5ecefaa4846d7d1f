#!/usr/bin/env bash
# CPU seconds used per process name (utime + stime of /proc/PID/stat, all processes)
# between T1 and T2 seconds from now; what BENCHMARKS.md's "where the CPU goes" split
# of a PostgreSQL run reports. Processes that start or end inside the window are left
# out (the server's and PostgreSQL's backends live for the whole run).
#
#   scripts/cpu-by-process.sh T1 T2
set -euo pipefail
t1=${1:?T1}; t2=${2:?T2}
hz=$(getconf CLK_TCK)
snap() {
    for p in /proc/[0-9]*; do
        comm=$(tr ' ' _ <"$p/comm" 2>/dev/null) || continue
        ticks=$(awk '{print $14 + $15}' "$p/stat" 2>/dev/null) || continue
        echo "${p#/proc/} $comm $ticks"
    done | sort
}
sleep "$t1"; a=$(snap); start=$(date +%s.%N)
sleep "$((t2 - t1))"; b=$(snap); end=$(date +%s.%N)
join <(echo "$a") <(echo "$b") |
    awk -v hz="$hz" '{d[$2] += $5 - $3} END {for (k in d) if (d[k] > 0) printf "%s %.2f\n", k, d[k] / hz}' |
    sort -k2 -n -r | head -12
awk -v s="$start" -v e="$end" 'BEGIN {printf "window %.2f s\n", e - s}'
