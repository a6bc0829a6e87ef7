#!/bin/sh
# Endless crash-consistency workload on /data, one iteration =
#  1. write blobs/N.bin (16 KiB random) via tmp+fsync+rename+dir fsync
#  2. append record "R N time val sha256(blob) chk" to records.log, fdatasync
#  3. sqlite3 transaction: INSERT ev(N,val,sha) + UPDATE meta counters (WAL mode)
#  4. delete blobs/(N-64).bin
# check.sh verifies the invariants this ordering guarantees at any crash point.
# Also runs on a host (bash, GNU coreutils, sqlite3) against a mounted copy of the disk:
#   DATA=/mnt/x/data bash workload.sh &     (DATA defaults to /data; DELAY = sleep per iteration)
D=${DATA:-/data}; mkdir -p $D/blobs; cd $D || exit 1
LOG=records.log DB=test.db
touch $LOG
# a crash may leave an unterminated last record: drop it before appending again
if [ -s $LOG ] && [ "$(tail -c 1 $LOG | wc -l)" -eq 0 ]; then
  head -n "$(wc -l <$LOG)" $LOG >$LOG.tmp && sync -d $LOG.tmp && mv $LOG.tmp $LOG
fi
sqlite3 $DB "PRAGMA journal_mode=WAL;
  CREATE TABLE IF NOT EXISTS ev(seq INTEGER PRIMARY KEY, val INTEGER, sha TEXT);
  CREATE TABLE IF NOT EXISTS meta(id INTEGER PRIMARY KEY, cnt INTEGER, total INTEGER);
  INSERT OR IGNORE INTO meta VALUES(1, 0, 0);" >/dev/null
sync $D $D/blobs
n=$(awk 'END { print $2 + 0 }' $LOG)
while :; do
  n=$((n + 1))
  head -c 16384 /dev/urandom >blobs/$n.tmp && sync -d blobs/$n.tmp
  mv blobs/$n.tmp blobs/$n.bin && sync blobs
  h=$(sha256sum blobs/$n.bin) && h=${h%% *}
  v=$RANDOM t=$(date +%s)
  echo "R $n $t $v $h $(((n * 40503 + v * 9973 + t) % 1000000007))" >>$LOG && sync -d $LOG
  sqlite3 $DB "BEGIN; INSERT INTO ev VALUES($n, $v, '$h');
    UPDATE meta SET cnt = cnt + 1, total = total + $v WHERE id = 1; COMMIT;" || exit 1
  rm -f blobs/$((n - 64)).bin
  [ $((n % 100)) -ne 0 ] || [ -n "${DATA:-}" ] || echo "GUEST-PROGRESS seq=$n" >/dev/console
  [ "${DELAY:-0}" = 0 ] || sleep "$DELAY"
done
