"""Not a test (pytest does not collect it by default): sends MEASURE_FILES
(default 200) files of 1 KiB from alice to bob in one cp -r, waits until
all are in bob's inbox (printing the CPU per file both daemons spent until
then), then reads each once with cat and prints the wall
time of the reads and the CPU bob's daemon spent on them (/proc/PID/stat).
Opening an inbox file unwraps its content key with bob's key, so this is
the cost a reader pays per file. Run it explicitly:

  SNOOPFS_BIN=$PWD/build/snoopfs /usr/bin/python3 -m pytest \
      -q -s -p no:cacheprovider tests/blackbox/_measure_inbox_read.py
"""
import os
import subprocess
import time

from snoopnodes import wait_until
from test_delivery_faults import pair


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_measure(cluster, tmp_path):
    n = int(os.environ.get("MEASURE_FILES", "200"))
    src = tmp_path / "small"
    src.mkdir()
    want = {}
    for i in range(n):
        data = os.urandom(1024)
        (src / ("f%04d" % i)).write_bytes(data)
        want["f%04d" % i] = data
    alice, bob = pair(cluster)
    pa, pb = alice.read_pid(), bob.read_pid()
    s0a, s0b = cpu(pa), cpu(pb)
    subprocess.run(["cp", "-r", str(src), str(alice.mnt / "outbox/bob/")],
                   check=True, timeout=120)
    inbox = bob.mnt / "inbox/alice/small"
    assert wait_until(lambda: inbox.is_dir() and
                      len(os.listdir(inbox)) == n, 120), "not all arrived"
    assert wait_until(lambda: not os.listdir(alice.mnt / "outbox/bob/small"),
                      120), "not all delivered"
    s1a, s1b = cpu(pa), cpu(pb)
    print("\nMEASURE send: %d files of 1 KiB with one cp -r until delivered: "
          "CPU per file alice %.2f ms, bob %.2f ms" %
          (n, (s1a - s0a) * 1e3 / n, (s1b - s0b) * 1e3 / n))
    names = sorted(os.listdir(inbox))
    paths = [str(inbox / name) for name in names]
    time.sleep(0.5)
    c0 = cpu(pb)
    t0 = time.time()
    r = subprocess.run(["cat"] + paths, stdout=subprocess.PIPE, check=True,
                       timeout=120)
    wall = time.time() - t0
    c1 = cpu(pb)
    assert r.stdout == b"".join(want[name] for name in names)
    print("\nMEASURE inbox read: %d files of 1 KiB with one cat: wall %.1f ms "
          "(%.2f ms per file); bob's daemon CPU %.0f ms (%.2f ms per file)" %
          (n, wall * 1e3, wall * 1e3 / n, (c1 - c0) * 1e3,
           (c1 - c0) * 1e3 / n))
