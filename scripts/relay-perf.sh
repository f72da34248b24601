#!/usr/bin/env bash
# Where the relay's CPU goes while relay-bench drives it: samples every thread of the running
# `videocall-relay` with `perf record` (software clock: this VM has no hardware counters) for
# a window inside the bench's measured seconds, then prints the hottest symbols and a summary
# by where the time was spent (kernel network path, QUIC crypto, quinn, tokio, the relay).
#
#   target/release/relay-bench --scenario meeting50 --transport webtransport --warmup 3 --seconds 20 &
#   scripts/relay-perf.sh 6 10 /tmp/perf-new        # start after 6 s, sample 10 s
#   scripts/relay-perf.sh report /tmp/perf-new           # the report again, from its perf.data
#   PERF_PID=$(pgrep -o -x send-floor) scripts/relay-perf.sh 0 6 /tmp/perf-floor   # another process (its sender, not its subscribers)
#
# Needs Debian's linux-perf (installed here when missing).
set -euo pipefail
command -v perf >/dev/null 2>&1 || apt-get install -y -qq linux-perf >/dev/null
if [ "${1:-}" = report ]; then
  out="$2"
else
  delay="${1:-6}"
  seconds="${2:-10}"
  out="${3:-/tmp/relay-perf}"
  mkdir -p "$out"
  sleep "$delay"
  # PERF_PID samples another process the same way (send-floor's QUIC floors, say).
  pid=${PERF_PID:-$(pgrep -n -x videocall-relay)} || { echo "no videocall-relay running" >&2; exit 1; }
  perf record -q -F 1999 -p "$pid" -o "$out/perf.data" -- sleep "$seconds" 2>/dev/null
fi
perf report -i "$out/perf.data" --no-children --sort dso,sym --percent-limit 0.7 --stdio 2>/dev/null |
  grep -v '^#' | sed '/^$/d' >"$out/symbols.txt"
# Every sample's symbol, grouped: the groups are what BENCHMARKS.md reports.
perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio --percent-limit 0 2>/dev/null |
  grep -v '^#' | sed '/^$/d' | awk '
    {
      pct = $1; sub("%", "", pct); line = $0
      if (line ~ /\[kernel/ ) {
        if (line ~ /udp|ip_|__ip|skb|net_|dev_|loopback|netif|sock|sendmsg|recvmsg|napi|tcp|__sys_send|__sys_recv|inet|nf_|csum|copy_user|memcpy_orig|copyin|copyout|_copy_/) g = "kernel: network path (send, loopback delivery, receive)"
        else if (line ~ /futex|schedule|switch|wake|epoll|ep_|try_to_wake|enqueue|dequeue|pick_next|finish_task|_raw_spin_unlock_irqrestore/) g = "kernel: scheduling, futex, epoll"
        else g = "kernel: other (syscall entry, timers, memory)"
      }
      else if (line ~ /aes|gcm|ghash|ring_core|ring::|aws_lc|chacha|poly1305|gfmul|_ctr32|ecp_nistz/) g = "crypto (QUIC packet protection)"
      else if (line ~ /quinn_proto|quinn_udp/) g = "quinn-proto, quinn-udp"
      else if (line ~ /quinn::|quinn_/) g = "quinn (connection driver)"
      else if (line ~ /wtransport/) g = "wtransport"
      else if (line ~ /tokio/) g = "tokio (tasks, channels, I/O driver)"
      else if (line ~ /prometheus/) g = "metrics (prometheus)"
      else if (line ~ /videocall_relay::transport/) g = "relay: transports (outbox, writer, lanes)"
      else if (line ~ /videocall_relay::/) g = "relay: core (fan-out, tracks, sessions)"
      else if (line ~ /libc\.so|\[vdso\]/) g = "libc (allocation, copies, clock)"
      else g = "std, alloc, bytes and the rest (in the binary)"
      sum[g] += pct
    }
    END { for (g in sum) printf "%6.1f%%  %s\n", sum[g], g }' | sort -rn >"$out/groups.txt"
echo "== by group ($out/groups.txt)"
cat "$out/groups.txt"
echo "== hottest symbols ($out/symbols.txt)"
head -40 "$out/symbols.txt"
