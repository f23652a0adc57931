"""Not a test (pytest does not collect it by default): sends MEASURE_MB MiB
(default 1024) from alice to bob MEASURE_RUNS times (default 2), resetting
both daemons' VmHWM (clear_refs 5) before each, and after the transfer and
after each read pattern (MEASURE_READS, comma-separated of cat, cat4 (four
concurrent cats), dd (bs=16M)) prints both daemons' VmHWM, thread count and
the anonymous memory by mapping kind (heap, other anonymous) from smaps.
  MEASURE_MB=1024 SNOOPFS_BIN=$PWD/build/snoopfs /usr/bin/python3 -m pytest \
      -q -s -p no:cacheprovider tests/blackbox/_measure_memory.py
"""
import os
import subprocess
import time

from snoopnodes import wait_outbox_gone, wait_until
from test_delivery_faults import pair


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()[0] if v.split() else ""
    return out


def anon(pid):
    """(heap KiB, other anonymous KiB, mappings of >= 1 MiB RSS)"""
    heap = other = 0
    big = 0
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5:
                name = parts[5] if len(parts) >= 6 else ""
            elif parts[0] == "Rss:":
                kb = int(parts[1])
                if name == "[heap]":
                    heap += kb
                elif name == "":
                    other += kb
                    if kb >= 1024:
                        big += 1
    return heap, other, big


def maps(pid):
    """the anonymous mappings with >= 512 KiB resident: (size KiB, Rss KiB)"""
    out = []
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5:
                a, b = (int(x, 16) for x in parts[0].split("-"))
                cur = (b - a) // 1024 if len(parts) == 5 else None
            elif parts[0] == "Rss:" and cur is not None and \
                    int(parts[1]) >= 100:
                out.append("%dK/%dK" % (int(parts[1]), cur))
    return " ".join(out)


def show(tag, who, pid):
    s = status(pid)
    h, o, b = anon(pid)
    print("MEASURE %-14s %-5s HWM %6.1f MiB RSS %6.1f threads %2s "
          "heap %5.1f anon %5.1f (%d maps >= 1 MiB)" % (
              tag, who, int(s["VmHWM"]) / 1024, int(s["VmRSS"]) / 1024,
              s["Threads"], h / 1024, o / 1024, b), flush=True)
    if os.environ.get("MEASURE_WCHAN") == "1":
        w = {}
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                c = open("/proc/%d/task/%s/wchan" % (pid, t)).read()
            except OSError:
                continue
            w[c] = w.get(c, 0) + 1
        print("MEASURE   wchan: %s" % sorted(w.items()), flush=True)
    if os.environ.get("MEASURE_MAPS") == "1":
        print("MEASURE   maps (rss/size): " + maps(pid), flush=True)


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def test_measure(cluster, tmp_path):
    mb = int(os.environ.get("MEASURE_MB", "1024"))
    runs = int(os.environ.get("MEASURE_RUNS", "2"))
    reads = os.environ.get("MEASURE_READS", "cat,cat4,dd").split(",")
    os.makedirs("/tmp/snoopfs-measure", exist_ok=True)
    src = "/tmp/snoopfs-measure/mem-%d.bin" % mb
    try:
        if not os.path.exists(src) or os.path.getsize(src) != mb << 20:
            with open(src, "wb") as f:
                for _ in range(mb):
                    f.write(os.urandom(1 << 20))
        alice, bob = pair(cluster)
        pa, pb = alice.read_pid(), bob.read_pid()
        print()
        show("start", "alice", pa)
        show("start", "bob", pb)
        for i in range(runs):
            name = "m%d.bin" % i
            reset(pa)
            reset(pb)
            subprocess.run(["cp", src, str(alice.mnt / "outbox/bob" / name)],
                           check=True)
            wait_outbox_gone(alice, "bob", name, timeout=900)
            show("run%d sent" % i, "alice", pa)
            show("run%d sent" % i, "bob", pb)
            dst = str(bob.mnt / "inbox/alice" / name)
            for r in reads:
                c0 = cpu(pb)
                t0 = time.time()
                if r == "cat":
                    subprocess.run(["sh", "-c", 'cat "$0" >/dev/null', dst],
                                   check=True)
                elif r == "cat4":
                    ps = [subprocess.Popen(["sh", "-c", 'cat "$0" >/dev/null',
                                            dst]) for _ in range(4)]
                    for p in ps:
                        assert p.wait() == 0
                elif r == "dd":
                    subprocess.run(["dd", "if=" + dst, "of=/dev/null",
                                    "bs=16M", "status=none"], check=True)
                print("MEASURE run%d %s: bob's CPU %.2f s, %.0f MB/s" % (
                    i, r, cpu(pb) - c0, mb * (4 if r == "cat4" else 1) *
                    2**20 / 1e6 / (time.time() - t0)))
                show("run%d %s" % (i, r), "bob", pb)
            os.unlink(dst)
        if os.environ.get("MEASURE_LOG"):
            for line in open(str(bob.state / "snoopfs.log")):
                if os.environ["MEASURE_LOG"] in line:
                    last = line
            print("MEASURE log: " + last.strip())
    finally:
        if os.environ.get("MEASURE_KEEP") != "1" and os.path.exists(src):
            os.unlink(src)
