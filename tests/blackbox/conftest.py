"""Fixtures for the snoopfs black-box tests.

The tests drive the real binary (SNOOPFS_BIN, default <repo>/build/snoopfs)
on 127.0.0.1; the helpers that run nodes live in snoopnodes.py and the wire
protocol client in snoopwire.py. Every fixture that mounts unmounts
(`fusermount3 -u -z`), waits for its daemons and kills leftovers by PID only,
and fails the test on any sanitizer report.
"""

import os
import shutil

import pytest

import snoopnodes
from snoopnodes import Cluster, Snoop, SNOOPFS_BIN


def pytest_configure(config):
    # `pytest -m reliability` selects the reliability suite alone.
    config.addinivalue_line("markers", "reliability: kill -9 storms, full "
                            "disks and idle connections (test_reliability.py)")


@pytest.fixture(scope="session")
def snoopfs_bin():
    """The binary under test; the suite fails loudly if it is not built."""
    if not (SNOOPFS_BIN.is_file() and os.access(SNOOPFS_BIN, os.X_OK)):
        pytest.fail("snoopfs binary not found at %s: build it "
                    "(cmake -B build && cmake --build build) or set SNOOPFS_BIN"
                    % SNOOPFS_BIN, pytrace=False)
    return SNOOPFS_BIN


@pytest.fixture
def snoop(snoopfs_bin, tmp_path):
    """A Snoop runner for one test; fails the test on sanitizer reports."""
    s = Snoop(snoopfs_bin, tmp_path / "sanitizer")
    yield s
    problems = s.sanitizer_reports()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def fuse_available():
    """Skips (does not fail) where FUSE cannot work at all."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing")
    if shutil.which("fusermount3") is None:
        pytest.skip("fusermount3 is missing")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is not accessible")
    return True


@pytest.fixture
def cluster(fuse_available, snoop, tmp_path):
    """An empty Cluster for one test; init_ca() and add_node() fill it."""
    c = Cluster(snoop, tmp_path / "c")
    c.base.mkdir()
    try:
        yield c
    finally:
        problems = c.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def netns_lan():
    """A Lan for one test (netns.py): hosts in network namespaces on a
    bridge of their own, all removed afterwards. Skips where they cannot be
    made (not root, no ip/tc/nsenter), fails instead under CI=true. A test
    that mounts nodes on its hosts must unmount them before this fixture
    ends (ask for it before the cluster's fixture, or as test_hosts does)."""
    import netns
    with netns.lan() as lan:
        yield lan


@pytest.fixture(scope="session", autouse=True)
def _sweep_mounts():
    """Last line of defence: nothing this session mounted stays mounted."""
    yield
    for mnt in snoopnodes.all_mountpoints():
        if snoopnodes.is_mounted(mnt):
            snoopnodes.fusermount_u(mnt, lazy=True)


BIG_SIZE = 1 << 30


class BigFile:
    """The shared 1 GiB random file: its path, size and SHA-256 (hex)."""

    def __init__(self, path, size, sha256):
        self.path, self.size, self.sha256 = path, size, sha256


@pytest.fixture(scope="session")
def big_file(tmp_path_factory):
    """One 1 GiB file of random bytes, made once per session and removed after.

    Its size is not a multiple of the 64 KiB chunk, so the last chunk is short.
    """
    import hashlib
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    path = tmp_path_factory.mktemp("big") / "big.bin"
    size = BIG_SIZE - 12345
    h = hashlib.sha256()
    left = size
    # An AES-CTR key stream: random-looking bytes, much faster than urandom.
    stream = Cipher(algorithms.AES(os.urandom(32)),
                    modes.CTR(os.urandom(16))).encryptor()
    zeros = bytes(8 << 20)
    with open(path, "wb") as f:
        while left:
            block = stream.update(zeros[:min(left, len(zeros))])
            h.update(block)
            f.write(block)
            left -= len(block)
    yield BigFile(path, size, h.hexdigest())
    try:
        path.unlink()
    except OSError:
        pass
