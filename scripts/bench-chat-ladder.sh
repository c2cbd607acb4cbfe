# Sourced by the chat benchmarks: runs `sockit bench chat` against several
# contenders at a ladder of rates, rotating which goes first each round,
# and keeps each one's highest lossless deliveries/s (RFC 2544's
# throughput: a relay that drops lines cannot look fast).
#
# Needs: sockit (the binary), rounds, members, senders, secs, rates.
# chat_ladder NAME ADDRS NAME ADDRS ... prints every run and the medians,
# and leaves each contender's median in median_of[NAME].

declare -A median_of

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

chat_run() { # "addrs" rate -> "deliveries/s p99_us missing"
  local per_sender=$(( $2 * secs / senders ))
  # shellcheck disable=SC2086
  "$sockit" bench chat $1 --members "$members" --senders "$senders" --messages "$per_sender" \
    --rate "$2" --drain 5 --connect-parallelism 1 --insecure-no-auth --json 2>/dev/null \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print("%.0f %d %d" % (r["deliveries_per_sec"], r["p99_us"], r["missing"] + r["unsynced"]))' \
    || echo "0 0 -1"
}

chat_ladder() {
  local names=() round rate who shift_by rate_got p99 missing
  declare -A addr_of best best_of
  while [ $# -gt 0 ]; do names+=("$1"); addr_of[$1]="$2"; best_of[$1]=""; shift 2; done
  echo "$members members, $senders senders, ${secs}s per rate, rates (lines/s): $rates"
  printf '%-6s %-14s %7s %14s %10s %10s\n' round server rate deliveries/s p99_ms missing
  for round in $(seq "$rounds"); do
    for who in "${names[@]}"; do best[$who]=0; done
    for rate in $rates; do
      # Rotate which goes first, so none always runs on a warmer machine.
      shift_by=$(( (round - 1) % ${#names[@]} ))
      for who in "${names[@]:shift_by}" "${names[@]:0:shift_by}"; do
        read -r rate_got p99 missing < <(chat_run "${addr_of[$who]}" "$rate")
        printf '%-6s %-14s %7s %14s %10s %10s\n' "$round" "$who" "$rate" "$rate_got" "$((p99 / 1000))" "$missing"
        if [ "$missing" = 0 ]; then
          best[$who]=$(python3 -c "print(max(${best[$who]}, $rate_got))")
        fi
      done
    done
    for who in "${names[@]}"; do best_of[$who]="${best_of[$who]} ${best[$who]}"; done
  done
  echo
  echo "highest lossless deliveries/s, median of $rounds rounds:"
  for who in "${names[@]}"; do
    # shellcheck disable=SC2086
    median_of[$who]=$(median ${best_of[$who]})
    printf '  %-14s %12s   rounds:%s\n' "$who" "${median_of[$who]}" "${best_of[$who]}"
  done
}
