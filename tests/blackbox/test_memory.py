"""A daemon's memory does not grow with what is read through its mount
(issue 21, memory). libfuse starts a worker thread whenever a request
arrives while none waits idle and never stops one, and each worker keeps
about 1 MiB (its malloc arena's last read reply), so with up to 16 workers
the receiver's peak RSS grew with the bytes read; snoopfs caps them at 8.

* test_concurrent_reads_bounded_workers: four rounds of 16 readers at
  once of 16 inbox files of 16 MiB (each with its own readahead, so many
  reads in flight): the contents are right, no more than 8 FUSE workers
  wait in /dev/fuse afterwards, and (outside sanitizer builds, whose allocator
  keeps freed memory in quarantine) the daemon's VmHWM stays within
  64 MiB, the benchmark's bound. The cap makes the first check hold
  always; with the old cap of 16 it failed in about half the runs here
  (12 idle workers), so it guards the cap and cannot flake on timing.
"""
import os
import subprocess

from snoopnodes import SNOOPFS_BIN, sha256_file, wait_outbox_gone, wait_until
from test_delivery_faults import pair

FUSE_WORKERS = 8
FILES = 16
MIB = 1 << 20
SIZE = 16 * MIB
ROUNDS = 4


def fuse_workers_idle(pid):
    """The threads of PID that wait in a read of /dev/fuse."""
    n = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/wchan" % (pid, t)) as f:
                if f.read() == "fuse_dev_do_read":
                    n += 1
        except OSError:
            pass  # a thread that ended meanwhile
    return n


def vm_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


def sanitized(path):
    with open(path, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def test_concurrent_reads_bounded_workers(cluster, tmp_path):
    alice, bob = pair(cluster)
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        for _ in range(SIZE // MIB):
            f.write(os.urandom(MIB))
    want = sha256_file(src)
    names = ["r%d.bin" % i for i in range(FILES)]
    for name in names:
        subprocess.run(["cp", str(src), str(alice.mnt / "outbox/bob" / name)],
                       check=True, timeout=120)
    for name in names:
        wait_outbox_gone(alice, "bob", name, timeout=300)
    pid = bob.read_pid()
    for _ in range(ROUNDS):
        readers = [subprocess.Popen(
            ["sha256sum", str(bob.mnt / "inbox/alice" / name)],
            stdout=subprocess.PIPE, text=True) for name in names]
        for r in readers:
            out, _ = r.communicate(timeout=300)
            assert r.returncode == 0
            assert out.split()[0] == want
    # Workers go back to waiting in /dev/fuse once the last reply is sent.
    wait_until(lambda: fuse_workers_idle(pid) > 0, 10)
    idle = fuse_workers_idle(pid)
    assert 0 < idle <= FUSE_WORKERS, (
        "%d FUSE workers wait in /dev/fuse, more than %d" %
        (idle, FUSE_WORKERS))
    if not sanitized(SNOOPFS_BIN):
        hwm = vm_hwm_mib(pid)
        assert hwm <= 64, "bob's daemon peaked at %.1f MiB" % hwm
