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

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
