"""Not a test (pytest does not collect it by default): measures one cp of
MEASURE_MB MiB (default 256) into outbox/bob/ until it left the outbox: CPU
of cp (wait4), of alice's and bob's daemons (/proc/PID/stat) and alice's
disk writes (/proc/PID/io write_bytes). Run it explicitly:

  MEASURE_MB=256 SNOOPFS_BIN=$PWD/build/snoopfs /usr/bin/python3 -m pytest \
      -q -s -p no:cacheprovider tests/blackbox/_measure_sealonce.py
"""
import os
import time

from snoopnodes import wait_outbox_gone
from test_delivery_faults import pair


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wbytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])


def test_measure(cluster, tmp_path):
    mb = int(os.environ.get("MEASURE_MB", "256"))
    # Kept between runs: writing 1 GiB of random bytes takes a while.
    os.makedirs("/tmp/snoopfs-measure", exist_ok=True)
    src = "/tmp/snoopfs-measure/src-%d.bin" % mb
    if not os.path.exists(src) or os.path.getsize(src) != mb << 20:
        with open(src, "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))
    alice, bob = pair(cluster)
    pa, pb = alice.read_pid(), bob.read_pid()
    os.sync()
    c0a, c0b, w0 = cpu(pa), cpu(pb), wbytes(pa)
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        os.execvp("cp", ["cp", src, str(alice.mnt / "outbox/bob/big.bin")])
    _, status, ru = os.wait4(pid, 0)
    t_cp = time.time() - t0
    assert status == 0
    c1a = cpu(pa)
    wait_outbox_gone(alice, "bob", "big.bin", timeout=600)
    t_all = time.time() - t0
    ca, cb, w = cpu(pa) - c0a, cpu(pb) - c0b, wbytes(pa) - w0
    ccp = ru.ru_utime + ru.ru_stime
    print("\nMEASURE %d MiB: cp wall %.2f s cpu %.2f s; alice cpu %.2f s "
          "(%.2f during cp); bob cpu %.2f s; alice write_bytes %.1f MiB; "
          "until delivered %.2f s" % (mb, t_cp, ccp, ca, c1a - c0a, cb, w / 2**20, t_all))
