# Shared by the benchmark scripts (sourced).

need() { # need COMMAND DEBIAN_PACKAGE: install the package when the command is missing
  command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }
}

need_liferaft() { # install liferaft when missing, and make sure its modules are byte-compiled, as
  # pip leaves them: an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile
  # every module again at each start (about 0.25 s a command on the development machine)
  command -v liferaft >/dev/null || python3 -m pip install -q "$(dirname "${BASH_SOURCE[0]}")/.."
  python3 -m compileall -q "$(python3 -c 'import liferaft, os; print(os.path.dirname(liferaft.__file__))')" >/dev/null
  # run the entry script beside the interpreter, not a version manager's shim in front of it
  # (pyenv's costs about 0.1 s a command here, while restic is a plain binary)
  PATH="$(dirname "$(python3 -c 'import sys; print(sys.executable)')"):$PATH"
}

prng() { # prng SEED BYTES: deterministic pseudo-random bytes on stdout
  (openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2 -iter 1 </dev/zero 2>/dev/null || true) | head -c "$2"
}

partition_loop() { # partition_loop IMG N: a loop device over partition N of IMG (this kernel's
  # loop driver may not scan partition tables, so each partition gets its own offset device)
  local start sectors
  read -r start sectors < <(partx -g -o START,SECTORS -n "$2" "$1")
  losetup -f --show --offset $((start * 512)) --sizelimit $((sectors * 512)) "$1"
}

measure() { # measure TOOL STEP STORED_PATH CMD...: run CMD on cold caches, print one table row
  #   tool step wall_s cpu_s rss_mib stored_mib
  # CMD's standard output goes to $MEASURE_OUT when that is set (else nowhere).
  local tool=$1 step=$2 stored=$3 tf wall u s rss mib=-; shift 3
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  tf=$(mktemp); /usr/bin/time -o "$tf" -f '%e %U %S %M' "$@" >"${MEASURE_OUT:-/dev/null}" 2>"$tf.err" || {
    echo "$tool $step failed:" >&2; cat "$tf.err" >&2; }
  read -r wall u s rss < <(tail -n 1 "$tf"); rm -f "$tf" "$tf.err"
  [ "$stored" != - ] && mib=$(( $(du -sb "$stored" | cut -f1) / 1048576 ))
  printf '%-16s %-10s %8.2f %8.2f %8d %8s\n' "$tool" "$step" "$wall" "$(python3 -c "print($u + $s)")" $((rss / 1024)) "$mib"
}

header() { printf '%-16s %-10s %8s %8s %8s %8s\n' tool step wall_s cpu_s rss_mib stored_mib; }

bench_disks() { # bench_disks DIR: DIR/day0.img (make-disk) and DIR/day1.img (mutate-disk), cached
  # and rebuilt only when the scripts that make them change
  local dir=$1 here stamp; here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
  stamp=$(cat "$here/make-disk" "$here/mutate-disk" "$here/lib.sh" | sha256sum | cut -c1-16)
  if [ "$(cat "$dir/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$dir/day1.img" ]; then
    "$here/make-disk" "$dir/day0.img" >&2
    cp --sparse=always "$dir/day0.img" "$dir/day1.img" && "$here/mutate-disk" "$dir/day1.img" 1 >&2
    echo "$stamp" >"$dir/stamp"
  fi
}
