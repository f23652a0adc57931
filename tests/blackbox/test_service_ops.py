"""snoopfs run like a service (issue 20) and its log kept within bounds
(issue 17 item 5), seen from outside.

* SIGHUP reopens the log file by name (a renamed log, logrotate with a
  postrotate kill -HUP) and the mount stays up.
* --log-level: debug shows more than the default, error less.
* Under systemd (-f with JOURNAL_STREAM naming stderr) lines carry the
  journal's "<N>" priorities; --syslog sends RFC 3164 datagrams to /dev/log
  (a socket of the test's, bound over /dev/log in a private mount namespace).
* A flood of log lines never takes snoopfs.log past --log-max-size, and
  rotation keeps --log-keep whole files.
* --config FILE mounts with no flags, flags override it, and bad files are
  refused with their line number; a join token in a file readable by others
  is refused, and no token reaches a log.
* `cmake --install` puts every file in place, `systemd-analyze verify`
  accepts the unit, the unit's stale-mount cleanup clears only a stale
  mount, and bash completion completes commands, options and values.

One CA and alice are shared by the module; each test mounts alice as it
needs and leaves her unmounted, her logs checked for sanitizer output and
removed.
"""

import errno
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from snoopnodes import (CMD_TIMEOUT, EXIT_TIMEOUT, MOUNT_TIMEOUT, SNOOPFS_BIN,
                        WRAPPER, Node, build_ca_and, free_port, fusermount_u,
                        is_mounted, module_cluster, node_on_tmpfs, pid_alive,
                        sanitizer_hits, wait_until)

# "2026-01-02T03:04:05Z snoopfs info: ..." (lib/log.c, file and stderr)
LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ snoopfs "
                     r"(error|warning|info|debug): .*$")
# "<30>Jan  2 03:04:05 snoopfs[123]: ..." (facility daemon = 3)
SYSLOG_RE = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
                       r"snoopfs\[(\d+)\]: (.*)$", re.S)
TOKEN_RE = re.compile(r"snp1\.[A-Za-z0-9_-]{20,}")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "ops",
                              build_ca_and("alice"))


def log_files(node):
    return sorted(node.state.glob("snoopfs.log*"))


@pytest.fixture
def alice(net):
    """alice, unmounted; the test mounts her its own way. Afterwards she is
    unmounted, and her logs are checked for sanitizer output and removed."""
    a = net.nodes["alice"]
    if a.is_mounted():
        a.unmount()
    for f in log_files(a):
        f.unlink()
    yield a
    problems = a.teardown()
    for f in log_files(a):
        hits = sanitizer_hits(f.read_text(errors="replace"))
        if hits:
            problems.append("sanitizer output in %s:\n%s" % (f, "\n".join(hits)))
        f.unlink()
    assert not problems, "\n".join(problems)


def read(path):
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def mount_with(node, *args, expect_rc=0):
    """`snoopfs mount ARGS` (no implicit mount point or --state)."""
    r = node.snoop.run("mount", *args, timeout=MOUNT_TIMEOUT)
    assert r.returncode == expect_rc, (
        "snoopfs mount %s: exit %d, wanted %d\nstderr: %s\nlog: %s" % (
            " ".join(map(str, args)), r.returncode, expect_rc, r.stderr,
            node.log_tail()))
    if expect_rc == 0:
        assert wait_until(node.is_mounted, 5)
        pid = wait_until(node.read_pid, 5)
        assert pid
        node.pids.add(pid)
    return r


def write_conf(path, text, mode=0o644):
    path = Path(path)
    path.write_text(text)
    os.chmod(path, mode)
    return path


# --- signals and levels ------------------------------------------------------

def test_sighup_reopens_a_renamed_log_and_keeps_the_mount(alice):
    alice.mount()
    pid = alice.read_pid()
    assert wait_until(lambda: "mounted at" in read(alice.log), 5), alice.log_tail()
    moved = alice.state / "snoopfs.log.moved"
    os.rename(alice.log, moved)

    os.kill(pid, signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP: log reopened" in read(alice.log), 5), (
        "no new log after SIGHUP: %s" % log_files(alice))
    assert alice.is_mounted() and pid_alive(pid)
    assert "alice" in alice.cert_names(), "the tree stopped answering"

    # The next lines go to the new file too, none to the old one.
    os.kill(pid, signal.SIGHUP)
    assert wait_until(lambda: read(alice.log).count("log reopened") == 2, 5)
    alice.unmount()
    new, old = read(alice.log), read(moved)
    assert "node 'alice' unmounted" in new
    assert "mounted at" in old and "reopened" not in old and "unmounted" not in old
    assert all(LINE_RE.match(line) for line in new.splitlines()), new


def test_logrotate_postrotate_sighup(alice, tmp_path):
    logrotate = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate") else None)
    if not logrotate:
        pytest.skip("logrotate is not installed (scripts/setup installs it)")
    alice.mount("--log-max-size", "1G")
    pid = alice.read_pid()
    conf = write_conf(tmp_path / "logrotate.conf", """\
%s {
    rotate 2
    missingok
    postrotate
        kill -HUP "$(cat %s)"
    endscript
}
""" % (alice.log, alice.state / "snoopfs.pid"))
    r = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "lr.state"),
                        str(conf)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    rotated = alice.state / "snoopfs.log.1"
    assert "mounted at" in read(rotated)
    assert wait_until(lambda: "SIGHUP: log reopened" in read(alice.log), 5)
    assert alice.is_mounted() and pid_alive(pid)
    alice.unmount()
    assert "unmounted" in read(alice.log) and "unmounted" not in read(rotated)


def lines_of_a_mount(node, *extra):
    """Every log line of one mount and unmount of NODE: those the command
    printed before detaching and those of its log file."""
    for f in log_files(node):
        f.unlink()
    r = node.mount(*extra)
    node.unmount()
    return (r.stderr + read(node.log)).splitlines()


def test_log_level_debug_shows_more_and_error_less(alice):
    default = lines_of_a_mount(alice)
    debug = lines_of_a_mount(alice, "--log-level", "debug")
    error = lines_of_a_mount(alice, "--log-level", "error")

    def count(lines, level):
        return sum(1 for line in lines if " %s: " % level in line)
    assert count(default, "info") >= 2 and count(default, "debug") == 0, default
    assert count(debug, "debug") >= 1 and len(debug) > len(default), debug
    assert count(error, "info") == 0 and count(error, "warning") == 0, error
    assert len(error) < len(default), error

    r = alice.mount("--log-level", "loud", expect_rc=1)
    assert "--log-level takes error, warn, info or debug" in r.stderr
    assert not alice.is_mounted()


def test_journal_stream_gets_priorities(alice, net):
    """systemd's view: `mount -f` whose stderr is the journal's stream."""
    token = net.token("alice")  # --join on an enrolled node: a warning
    r_fd, w_fd = os.pipe()
    st = os.fstat(w_fd)
    env = dict(alice.snoop.env, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    p = subprocess.Popen(WRAPPER + [str(alice.snoop.binary), "mount",
                                    str(alice.mnt), "--state", str(alice.state),
                                    "-f", "--join", token],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=w_fd, env=env)
    os.close(w_fd)
    try:
        alice.pids.add(p.pid)
        assert wait_until(alice.is_mounted, 30), "-f never mounted"
        assert wait_until(lambda: alice.exists("certs/root.pem"), 10)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=EXIT_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=EXIT_TIMEOUT)
        with os.fdopen(r_fd, errors="replace") as f:
            out = f.read()
    assert p.returncode == 0, out
    lines = out.splitlines()
    assert lines and all(re.match(r"^<[0-7]>\S", line) for line in lines), out
    assert any(line.startswith("<4>--join ignored") for line in lines), out
    assert "<6>node 'alice' mounted at %s" % alice.mnt in out
    assert "<6>signal 15: unmounting" in out and "<6>node 'alice' unmounted" in out
    assert token not in out and not TOKEN_RE.search(out)
    assert not log_files(alice)

    # The command's own refusals are errors to the journal, too.
    r_fd, w_fd = os.pipe()
    st = os.fstat(w_fd)
    env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    r = subprocess.run(WRAPPER + [str(alice.snoop.binary), "mount",
                                  str(alice.mnt), "--state", str(alice.state),
                                  "-f", "--refresh", "0"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=w_fd, env=env, timeout=CMD_TIMEOUT)
    os.close(w_fd)
    with os.fdopen(r_fd, errors="replace") as f:
        out = f.read()
    assert r.returncode == 1
    assert out == "<3>snoopfs mount: --refresh takes 1..86400 seconds\n", out


SANDBOX = r'''
set -e
for n in null zero full random urandom fuse; do
	if [ -e "/dev/$n" ]; then
		touch "$DEVDIR/$n"
		mount --bind "/dev/$n" "$DEVDIR/$n"
	fi
done
ln -s "$LOGSOCK" "$DEVDIR/log"
mount --rbind "$DEVDIR" /dev
exec "$@"
'''


def test_syslog_gets_daemon_priorities(alice, net, tmp_path):
    """--syslog: datagrams to /dev/log. The test binds its own socket there,
    in a mount namespace of the daemon's own (the mount lives there too)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is missing")
    sock_path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    devdir = tmp_path / "dev"
    devdir.mkdir()
    token = net.token("alice")
    env = dict(alice.snoop.env, DEVDIR=str(devdir), LOGSOCK=str(sock_path))
    argv = (["unshare", "--mount", "--propagation", "private", "sh", "-c",
             SANDBOX, "sh"] + WRAPPER +
            [str(alice.snoop.binary), "mount", str(alice.mnt), "--state",
             str(alice.state), "--syslog", "-f", "--join", token])
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    got = []

    def until(text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and p.poll() is None:
            if any(text in g for g in got):
                return True
            sock.settimeout(0.2)
            try:
                got.append(sock.recv(4096).decode(errors="replace"))
            except socket.timeout:
                pass
        return any(text in g for g in got)
    try:
        alice.pids.add(p.pid)
        if not until("mounted at"):
            p.kill()
            out, err = p.communicate(timeout=EXIT_TIMEOUT)
            if "unshare failed" in err or "mount:" in err and "permission" in err.lower():
                pytest.skip("no private mount namespace here: %s" % err.strip())
            pytest.fail("no 'mounted' datagram: %s\n%s" % (got, err))
        p.send_signal(signal.SIGTERM)
        assert until("unmounted", EXIT_TIMEOUT), got
        out, err = p.communicate(timeout=EXIT_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=EXIT_TIMEOUT)
        sock.close()
    assert p.returncode == 0, err
    assert "no syslog" not in err, err
    prios = {}
    for g in got:
        m = SYSLOG_RE.match(g)
        assert m, "not a syslog datagram: %r" % g
        assert int(m.group(2)) == p.pid, g
        assert int(m.group(1)) >> 3 == 3, "facility is not daemon: %r" % g
        prios[m.group(3)] = int(m.group(1)) & 7
    assert any(v == 6 and k.startswith("node 'alice' mounted at")
               for k, v in prios.items()), prios
    assert any(v == 4 and k.startswith("--join ignored")
               for k, v in prios.items()), prios
    assert not any(TOKEN_RE.search(g) for g in got)
    assert not is_mounted(alice.mnt)


# --- the size cap --------------------------------------------------------------

def test_log_cap_holds_under_a_flood(alice):
    """Each SIGHUP writes a line: thousands of them, as fast as they come,
    rotate the log through snoopfs.log.1 and .2 and never past 16 KiB."""
    cap = 16 * 1024
    alice.mount("--log-max-size", "16K", "--log-keep", "2")
    pid = alice.read_pid()
    oldest = alice.state / "snoopfs.log.2"
    sent = 0
    deadline = time.monotonic() + 60
    # Until the oldest kept file exists, then as many again: the oldest
    # is dropped at least once.
    target = None
    while time.monotonic() < deadline and (target is None or sent < target):
        for _ in range(100):
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.0005)
        sent += 100
        if target is None and oldest.exists():
            target = 2 * sent
    assert target is not None, "no rotation after %d SIGHUPs: %s" % (
        sent, log_files(alice))
    # The last line is in once the signals are all taken.
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not alice.is_mounted(), 10)
    assert alice.wait_exit()

    names = [f.name for f in log_files(alice)]
    assert names == ["snoopfs.log", "snoopfs.log.1", "snoopfs.log.2"], names
    seen = 0
    for f in log_files(alice):
        data = f.read_bytes()
        assert 0 < len(data) <= cap, "%s: %d bytes" % (f, len(data))
        assert data.endswith(b"\n"), f
        for line in data.decode().splitlines():
            assert LINE_RE.match(line), "%s: %r" % (f, line)
            seen += 1
    assert seen > 2 * cap // 80
    assert "node 'alice' unmounted" in read(alice.log)


def test_full_disk_drops_whole_lines_and_says_so(net):
    """STATE on a small tmpfs that a filler file fills up: log lines are
    dropped whole while it is full, the node goes on serving, and once space
    is back the next line says how many were lost."""
    with node_on_tmpfs(net, "erin", "4m") as erin:
        erin.enroll(net.ca, token=net.token("erin"), pregen_key=False)
        pid = erin.read_pid()
        filler = erin.state / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = b"\0" * 65536
            while True:
                os.write(fd, block)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        # The log's last page may still take a few lines; then none fit.
        for _ in range(300):
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.002)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        os.close(fd)
        assert "dropped" not in read(erin.log)  # nothing fits, not even that
        assert erin.is_mounted() and pid_alive(pid)
        assert "ca" in erin.cert_names(), "the tree stopped answering"
        text = read(erin.log)
        assert text.endswith("\n") and all(LINE_RE.match(line)
                                           for line in text.splitlines()), text[-500:]

        filler.unlink()
        os.kill(pid, signal.SIGHUP)
        assert wait_until(lambda: re.search(
            r"warning: log: \d+ line\(s\) dropped: No space left on device\n"
            r".* info: SIGHUP: log reopened\n", read(erin.log)), 5), (
            read(erin.log)[-1000:])
        erin.unmount()


# --- the config file -----------------------------------------------------------

def test_config_file_mounts_with_no_flags(alice, tmp_path):
    conf = write_conf(tmp_path / "alice.conf", """\
# alice, as the systemd unit runs her
mountpoint = %s
state = %s
log-level = debug
log-max-size = 1M
log-keep = 1
""" % (alice.mnt, alice.state))
    mount_with(alice, "--config", conf)
    assert "alice" in alice.cert_names()
    alice.unmount()
    log = read(alice.log)
    assert " debug: log: %s, rotated at 1048576 bytes, 1 kept" % alice.log in log, log


def test_flags_override_the_config_file(alice, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    conf = write_conf(tmp_path / "alice.conf", """\
mountpoint = %s
state = %s
log-level = error
""" % (elsewhere, alice.state))
    mount_with(alice, alice.mnt, "--config", conf, "--log-level", "debug")
    assert not is_mounted(elsewhere)
    alice.unmount()
    assert " debug: " in read(alice.log)


BAD_CONFIGS = [
    ("state = {state}\ncolour = blue\n", ":2: unknown key 'colour'"),
    ("mountpoint = {mnt}\nstate = relative/state\n",
     ":2: state takes an absolute path"),
    ("state = {state}\n\nlog-level = loud\n",
     ":3: log-level takes error, warn, info or debug"),
    ("log-max-size = 1K\n", ":1: log-max-size takes a size from 16K to 1G"),
    ("# comment\nstate {state}\n", ":2: expected 'key = value'"),
    ("state = {state}\nstate = {state}\n", ":2: state is already set on line 1"),
    ("refresh = 0\n", ":1: refresh takes 1..86400 seconds"),
    ("listen = 127.0.0.1\n", ":1: listen takes HOST:PORT"),
    ("state = {state}\nrelay = maybe\n", ":2: relay takes on or off"),
    ("stream = 1\n", ":1: stream takes on or off"),
    ("relay-wait = 2h\n",
     ":1: relay-wait takes a time: 90s, 30m or seconds, from 1 to 3600 "
     "seconds"),
]


@pytest.mark.parametrize("text,want", BAD_CONFIGS,
                         ids=[w.split(": ", 1)[1][:24] for _, w in BAD_CONFIGS])
def test_bad_config_refused_with_line_number(alice, tmp_path, text, want):
    conf = write_conf(tmp_path / "bad.conf",
                      text.format(state=alice.state, mnt=alice.mnt))
    r = mount_with(alice, "--config", conf, expect_rc=1)
    assert r.stderr.startswith("snoopfs mount: %s%s" % (conf, want)), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not alice.is_mounted()


def test_missing_config_refused(alice, tmp_path):
    r = mount_with(alice, "--config", tmp_path / "nope.conf", expect_rc=1)
    assert r.stderr.strip() == ("snoopfs mount: %s: No such file or directory"
                                % (tmp_path / "nope.conf")), r.stderr
    r = mount_with(alice, "--state", alice.state, "--config", tmp_path,
                   expect_rc=1)
    assert "not a regular file" in r.stderr
    # Neither a mount point nor a config: usage.
    r = mount_with(alice, "--state", alice.state, expect_rc=1)
    assert "usage" in r.stderr


def test_a_new_node_enrolls_from_a_private_config_file(net, tmp_path):
    """The service's path for a new site: name, addresses and the join
    token in /etc/snoopfs/NAME.conf (0600), then the same file ever after."""
    dave = Node(net.snoop, "dave", net.base, free_port())
    net.nodes["dave"] = dave
    token = net.token("dave")
    text = """\
mountpoint = %s
state = %s
name = dave
listen = %s
ca = %s
join = %s
""" % (dave.mnt, dave.state, dave.addr, net.ca.addr, token)
    conf = write_conf(tmp_path / "dave.conf", text, mode=0o644)
    r = mount_with(dave, "--config", conf, expect_rc=1)
    assert "holds a join token but group or others may access it" in r.stderr
    assert "chmod 600" in r.stderr and token not in r.stderr
    assert not dave.state.exists()

    os.chmod(conf, 0o600)
    r = mount_with(dave, "--config", conf)
    assert wait_until(lambda: "ca" in dave.cert_names(), 15)
    dave.unmount()
    r = mount_with(dave, "--config", conf)
    assert "join token ignored" in r.stderr and "remove the join line" in r.stderr
    dave.unmount()
    for f in [r.stderr] + [read(f) for f in dave.state.glob("snoopfs.log*")]:
        assert token not in f and not TOKEN_RE.search(f)


# --- install, the systemd unit, bash completion ----------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`cmake --install BUILD --prefix P` of the build SNOOPFS_BIN is in."""
    build = SNOOPFS_BIN.resolve().parent
    if not (build / "cmake_install.cmake").exists():
        pytest.skip("%s is not a CMake build directory" % build)
    if shutil.which("cmake") is None:
        pytest.skip("cmake is missing")
    prefix = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["cmake", "--install", str(build), "--prefix",
                        str(prefix)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    return prefix


UNIT = "lib/systemd/system/snoopfs@.service"


def test_install_puts_every_file_in_place(installed):
    want = {"bin/snoopfs", "share/man/man1/snoopfs.1", UNIT,
            "share/bash-completion/completions/snoopfs",
            "share/doc/snoopfs/snoopfs.conf.example"}
    got = {str(p.relative_to(installed)) for p in installed.rglob("*")
           if p.is_file()}
    assert got == want, got ^ want
    assert os.access(installed / "bin/snoopfs", os.X_OK)
    r = subprocess.run([str(installed / "bin/snoopfs"), "--version"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0 and r.stdout.startswith("snoopfs "), r.stderr
    unit = (installed / UNIT).read_text()
    assert "ExecStart=%s/bin/snoopfs mount --config /etc/snoopfs/%%i.conf -f" % (
        installed) in unit
    assert "Restart=on-failure" in unit and "@BINDIR@" not in unit
    # The example is a config file snoopfs reads.
    example = (installed / "share/doc/snoopfs/snoopfs.conf.example").read_text()
    assert "mountpoint = " in example and "state = " in example


def systemd_analyze(prefix, unit_path):
    return subprocess.run(["systemd-analyze", "verify", str(unit_path)],
                          capture_output=True, text=True, timeout=CMD_TIMEOUT,
                          env=dict(os.environ, MANPATH=str(prefix / "share/man")))


def test_systemd_analyze_verify_accepts_the_unit(installed, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (scripts/setup installs systemd)")
    r = systemd_analyze(installed, installed / UNIT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "snoopfs@" not in r.stdout + r.stderr, r.stdout + r.stderr
    # The check can fail: a unit whose binary is not there is refused.
    broken = tmp_path / "snoopfs@.service"
    broken.write_text((installed / UNIT).read_text().replace(
        "/bin/snoopfs mount", "/bin/snoopfs-missing mount"))
    r = systemd_analyze(installed, broken)
    assert r.returncode != 0 and "snoopfs-missing" in r.stderr, r.stderr


def unit_command(installed, key, conf):
    """The unit's KEY= command as systemd runs it for an instance whose config
    file is CONF: specifiers and $$ resolved, the leading '-' dropped."""
    for line in (installed / UNIT).read_text().splitlines():
        if line.startswith(key + "="):
            cmd = line[len(key) + 1:].lstrip("-")
            cmd = cmd.replace("/etc/snoopfs/%i.conf", str(conf))
            assert "%" not in cmd.replace("%%", ""), cmd
            return shlex.split(cmd.replace("$$", "$"))
    raise AssertionError("no %s= in the unit" % key)


def test_unit_clears_a_stale_mount_and_only_a_stale_one(installed, alice,
                                                        tmp_path):
    conf = write_conf(tmp_path / "alice.conf", "mountpoint = %s  \nstate = %s\n"
                      % (alice.mnt, alice.state))
    for key in ("ExecStartPre", "ExecStopPost"):
        cmd = unit_command(installed, key, conf)
        mount_with(alice, "--config", conf)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT)
        assert r.returncode == 0, r.stderr
        assert alice.is_mounted() and "alice" in alice.cert_names(), (
            "%s unmounted a live node" % key)
        pid = alice.read_pid()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(pid), EXIT_TIMEOUT)
        assert alice.is_mounted(), "kill -9 should leave a stale mount"
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT)
        assert r.returncode == 0, r.stderr
        assert wait_until(lambda: not alice.is_mounted(), 5), (
            "%s left the stale mount" % key)
    # And the node starts again in its place.
    mount_with(alice, "--config", conf)
    alice.unmount()


def complete(installed, *words):
    """What the installed completion offers for WORDS (the last is the word
    being completed), with the installed snoopfs first on PATH."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _snoopfs; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script, "bash",
                        str(installed / "share/bash-completion/completions/snoopfs"),
                        *words], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT,
                       env=dict(os.environ, PATH="%s/bin:%s" % (
                           installed, os.environ["PATH"])))
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_bash_completion(installed, tmp_path):
    assert {"mount", "token", "status", "ca-init"} <= complete(installed, "snoopfs", "")
    assert complete(installed, "snoopfs", "mo") == {"mount"}
    assert complete(installed, "snoopfs", "mount", "--log-") == {
        "--log-level", "--log-max-size", "--log-keep"}
    assert {"--config", "--state", "--syslog", "-f", "-o"} <= complete(
        installed, "snoopfs", "mount", "-")
    assert complete(installed, "snoopfs", "mount", "--log-level", "") == {
        "error", "warn", "info", "debug"}
    assert complete(installed, "snoopfs", "token", "--") == {
        "--ttl", "--list", "--revoke", "--help"}
    (tmp_path / "node.conf").write_text("")
    (tmp_path / "mnt").mkdir()
    assert complete(installed, "snoopfs", "mount", "--config",
                    str(tmp_path / "no")) == {str(tmp_path / "node.conf")}
    assert complete(installed, "snoopfs", "mount", str(tmp_path / "m")) == {
        str(tmp_path / "mnt")}
