"""Not a test (pytest does not collect it by default): a warm-up cp and then
MEASURE_RUNS (default 3) cp's of MEASURE_MB MiB (default 256) into
outbox/bob/ until delivered; prints each run's CPU per GB (alice's and bob's
daemons from /proc/PID/stat, cp from wait4). MEASURE_PROFILE=perf records
`perf record -g` of both daemons over the last run into
MEASURE_OUT/{alice,bob}.perf; =strace writes `strace -c -f` of both.

  MEASURE_MB=256 SNOOPFS_BIN=$PWD/build/snoopfs /usr/bin/python3 -m pytest \
      -q -s -p no:cacheprovider tests/blackbox/_measure_bulk.py
"""
import os
import signal
import subprocess
import time

from snoopnodes import wait_outbox_gone
from test_delivery_faults import pair


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(alice, bob, src, name, mb, profile, out):
    pa, pb = alice.read_pid(), bob.read_pid()
    procs = []
    if profile == "perf":
        for who, p in (("alice", pa), ("bob", pb)):
            procs.append(subprocess.Popen(
                ["perf", "record", "-q", "-g", "-o",
                 "%s/%s.perf" % (out, who), "-p", str(p)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    elif profile == "strace":
        for who, p in (("alice", pa), ("bob", pb)):
            procs.append(subprocess.Popen(
                ["strace", "-c", "-f", "-o", "%s/%s.strace" % (out, who),
                 "-p", str(p)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if procs:
        time.sleep(1.0)
    c0a, c0b = cpu(pa), cpu(pb)
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        os.execvp("cp", ["cp", src, str(alice.mnt / "outbox/bob" / name)])
    _, status, ru = os.wait4(pid, 0)
    t_cp = time.time() - t0
    assert status == 0
    wait_outbox_gone(alice, "bob", name, timeout=600)
    t_all = time.time() - t0
    ca, cb = cpu(pa) - c0a, cpu(pb) - c0b
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(timeout=120)
    ccp = ru.ru_utime + ru.ru_stime
    gb = mb * 2**20 / 1e9
    print("\nMEASURE %d MiB%s: s/GB alice %.2f bob %.2f cp %.2f sum %.2f; "
          "cp wall %.2f s, until delivered %.2f s (%.0f MB/s)" % (
              mb, " (%s)" % profile if profile else "", ca / gb, cb / gb,
              ccp / gb, (ca + cb + ccp) / gb, t_cp, t_all,
              mb * 2**20 / 1e6 / t_all))


def test_measure(cluster, tmp_path):
    mb = int(os.environ.get("MEASURE_MB", "256"))
    runs = int(os.environ.get("MEASURE_RUNS", "3"))
    profile = os.environ.get("MEASURE_PROFILE", "")
    out = os.environ.get("MEASURE_OUT", str(tmp_path))
    os.makedirs("/tmp/snoopfs-measure", exist_ok=True)
    src = "/tmp/snoopfs-measure/src-%d.bin" % mb
    if not os.path.exists(src) or os.path.getsize(src) != mb << 20:
        with open(src, "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))
    alice, bob = pair(cluster)
    one(alice, bob, src, "warm.bin", mb, "", out)
    for i in range(runs):
        one(alice, bob, src, "big%d.bin" % i, mb,
            profile if i == runs - 1 else "", out)
