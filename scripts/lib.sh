# Shell helpers the project's scripts share (sourced, not run).

# A line on standard error, named after the script.
log() { echo "$(basename "$0"): $*" >&2; }

# Installs the Debian packages among "$@" that are missing.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Scripts run side by side (scripts/test.sh): one of them at a time runs apt, the others
    # wait. (DPkg::Lock::Timeout waits for dpkg's lock but not for `apt-get update`'s lists
    # lock: two updates at once fail.)
    (
      flock -w 1200 9 || {
        echo "need_apt: another script held apt for 20 minutes" >&2
        exit 1
      }
      apt-get -o DPkg::Lock::Timeout=600 update -qq
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    ) 9>"${TMPDIR:-/tmp}/videocall-apt.lock"
  fi
}

# A port on 127.0.0.1 that nothing uses now, for TCP and UDP alike.
#
# The port is below the kernel's ephemeral range (ip_local_port_range), free for TCP and UDP
# when picked, and not handed out before by this shell: a port the kernel picks for bind(0)
# comes from the ephemeral range, where an outgoing connection (a kubelet's watch, say) can take
# it before the server it was meant for starts, which then fails to bind on every restart.
free_port() {
  python3 - "${TMPDIR:-/tmp}/videocall-free-ports.$$" <<'PY'
import random, socket, sys
handed_out = sys.argv[1]
try:
    taken = set(open(handed_out).read().split())
except FileNotFoundError:
    taken = set()
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
candidates = range(10000, low) if low > 11000 else range(low + 20000, 65536)
for _ in range(2000):
    port = random.choice(candidates)
    if str(port) in taken:
        continue
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        continue
    with open(handed_out, "a") as f:
        f.write(f"{port}\n")
    print(port)
    break
else:
    sys.exit("free_port: no free loopback port found")
PY
}

# wait_for WHAT SECONDS COMMAND...: runs COMMAND until it succeeds, at most SECONDS.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}
