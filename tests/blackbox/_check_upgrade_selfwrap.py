"""Not a test (pytest does not collect it by default, and it needs a binary
of an older version): checks that what a node wrapped for itself with
RSA-OAEP before self wraps became symmetric still opens after an upgrade.
With SNOOPFS_OLD_BIN, alice and bob start on the old binary: bob stores
small files from a batch (their keys RSA-wrapped for bob), alice keeps an
unfinished spool (its key RSA-wrapped) and a job queued while bob is down
(its record's self_key RSA-wrapped). Both then restart on SNOOPFS_BIN: bob
reads the old files, the queued job is delivered, the old spool is
finished and ships, and new files go and read as well. Run it by hand:

  SNOOPFS_OLD_BIN=/path/to/old/snoopfs SNOOPFS_BIN=$PWD/build/snoopfs \\
      /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \\
      tests/blackbox/_check_upgrade_selfwrap.py
"""
import hashlib
import os
from pathlib import Path

import pytest

from snoopnodes import wait_delivered, wait_until
from test_delivery_faults import pair


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_upgrade(cluster, snoop):
    old = os.environ.get("SNOOPFS_OLD_BIN")
    if not old:
        pytest.skip("SNOOPFS_OLD_BIN is not set")
    new = snoop.binary
    snoop.binary = Path(old)
    alice, bob = pair(cluster)
    small = {"f%d" % i: os.urandom(1000 + i) for i in range(8)}
    src = alice.mnt / "outbox/bob/old"
    os.makedirs(src)
    for name, data in small.items():
        (src / name).write_bytes(data)
    for name, data in small.items():
        wait_delivered(bob, alice, "old/" + name, sha(data), size=len(data))
    spool = os.urandom(200 << 10)
    alice.write_bytes("outbox/bob/.spool.tmp", spool)
    bob.unmount()
    queued = os.urandom(3000)
    alice.write_bytes("outbox/bob/queued.bin", queued)
    alice.unmount()

    snoop.binary = new
    bob.mount()
    alice.mount()
    for name, data in small.items():
        assert bob.read_bytes("inbox/alice/old/" + name) == data, name
    wait_delivered(bob, alice, "queued.bin", sha(queued), size=len(queued))
    more = os.urandom(5000)
    with open(alice.mnt / "outbox/bob/.spool.tmp", "ab") as f:
        f.write(more)
    os.rename(alice.mnt / "outbox/bob/.spool.tmp",
              alice.mnt / "outbox/bob/spool.bin")
    wait_delivered(bob, alice, "spool.bin", sha(spool + more),
                   size=len(spool) + len(more))
    fresh = os.urandom(2000)
    alice.write_bytes("outbox/bob/new.bin", fresh)
    wait_delivered(bob, alice, "new.bin", sha(fresh), size=len(fresh))
    assert bob.read_bytes("inbox/alice/new.bin") == fresh
    assert wait_until(lambda: not alice.exists("outbox/bob/queued.bin"), 30)
