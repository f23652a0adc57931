"""The CA's lifecycle: inspect --json, ca-list, token --list/--revoke,
ca-backup and ca-restore.

`inspect --json` is checked field by field against `openssl x509`, and
ca-list against the certificates the nodes hold. The backup test runs a CA
with alice and bob, backs it up again and again while nodes enroll and
files travel, stops it, restores the last backup into a new STATE, and
mounts that at the same address: the nodes must keep delivering, see its
revocations, renew, and the token rules and replay protection must hold
across the restore. Wire-only clients (snoopwire) stand in for extra nodes,
which keeps the test short.
"""

import base64
import datetime
import json
import os
import re
import sqlite3
import subprocess
import tarfile
import threading
import time

import pytest

import snoopwire as w
from snoopnodes import (Node, build_ca_and_alice, cert_info, dead_addr,
                        file_mode, module_cluster, openssl, wait_until)
from test_renew import libfaketime, travel

REFRESH = 2
CRL_TIMEOUT = 6 * REFRESH + 10
RENEW_TIMEOUT = 10 * REFRESH + 20
MEMBERS = ["BACKUP", "node.conf", "root.pem", "root.key", "node.pem",
           "node.key", "registry.db", "SHA256SUMS"]

_counter = [0]


def fresh_name(prefix="lc"):
    _counter[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid() % 1000, _counter[0])


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "lifecycle",
                              build_ca_and_alice)


def run_ok(snoop, *args):
    r = snoop.run(*args)
    assert r.returncode == 0, "snoopfs %s: %s%s" % (args, r.stdout, r.stderr)
    return r


def one_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def token_id(tok):
    raw = tok[len("snp1."):]
    raw = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    return raw[32:40].hex()


def wire_enroll(ca, tok, name):
    """Enrolls NAME, a client that lives only on the wire, with the token
    TOK; (name, key, result)."""
    key = w.new_key()
    return name, key, w.enroll(ca.addr, name, key, dead_addr(), token=tok)


def refusal(res):
    assert res.reply is not None and res.reply.status == "error", res
    return res.reply.extra.get("error", "")


# --- inspect --json -------------------------------------------------------------

def openssl_fields(path):
    """What `openssl x509` says of the certificate at PATH."""
    r = openssl("x509", "-noout", "-nameopt", "RFC2253", "-subject", "-issuer",
                "-serial", "-dates", "-fingerprint", "-sha256", "-text",
                "-in", str(path))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    first = dict(l.split("=", 1) for l in out.splitlines()[:6] if "=" in l)

    def when(text):
        t = datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y %Z")
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    uri = re.search(r"URI:snoop://(\S+)", out)
    return {
        "subject": first["subject"],
        "issuer": first["issuer"],
        "serial": first["serial"],
        "fingerprint": "sha256:" + first["sha256 Fingerprint"].replace(
            ":", "").lower(),
        "not_before": when(first["notBefore"]),
        "not_after": when(first["notAfter"]),
        "address": uri.group(1) if uri else None,
        "key_bits": int(re.search(r"Public-Key: \((\d+) bit\)", out).group(1)),
        "is_ca": "CA:TRUE" in out,
    }


def test_inspect_json_agrees_with_openssl(net):
    alice = net.nodes["alice"]
    for path in (alice.certs / "alice.pem", net.ca.state / "root.pem",
                 alice.certs / "ca.pem"):
        r = run_ok(net.snoop, "inspect", "--json", path)
        got = json.loads(r.stdout)
        assert got == openssl_fields(path), path
    root = json.loads(run_ok(net.snoop, "inspect", "--json",
                             net.ca.state / "root.pem").stdout)
    assert root["is_ca"] and root["address"] is None
    assert root["fingerprint"] == net.fingerprint
    node = json.loads(run_ok(net.snoop, "inspect", alice.certs / "alice.pem",
                             "--json").stdout)
    assert node["subject"] == "CN=alice" and node["address"] == alice.addr
    assert re.fullmatch(r"[0-9A-F]+", node["serial"]), node


def test_inspect_json_refusals(net, tmp_path):
    alice = net.nodes["alice"]
    r = net.snoop.run("inspect", "--json", alice.certs / "crl.pem")
    assert r.returncode == 2 and "certificates only" in one_line(r), r
    r = net.snoop.run("inspect", "--json", tmp_path / "missing.pem")
    assert r.returncode == 2 and "missing.pem" in one_line(r), r
    assert net.snoop.run("inspect", "--json").returncode == 1
    assert net.snoop.run("inspect", "--bogus", "x.pem").returncode == 1
    # Without --json a CRL is still shown.
    r = run_ok(net.snoop, "inspect", alice.certs / "crl.pem")
    assert "CRL number:" in r.stdout
    for cmd in ("inspect", "ca-list", "ca-backup", "ca-restore", "token"):
        r = net.snoop.run(cmd, "--help")
        assert r.returncode == 0 and "usage: snoopfs " + cmd in r.stdout, r


# --- ca-list ----------------------------------------------------------------

def ca_list(net, state=None):
    state = state or net.ca.state
    plain = run_ok(net.snoop, "ca-list", state).stdout.splitlines()
    rows = [l.split(None, 4) for l in plain[1:]]
    assert plain[0].split()[:3] == ["NAME", "SERIAL", "ADDRESS"], plain
    js = json.loads(run_ok(net.snoop, "ca-list", "--json", state).stdout)
    assert [(j["name"], j["serial"]) for j in js] == [
        (r[0], r[1]) for r in rows]
    return rows, js


def test_ca_list(net):
    alice = net.nodes["alice"]
    rows, js = ca_list(net)
    by_name = {j["name"]: j for j in js if j["current"]}
    for name in ("alice", "ca"):
        serial, _ = cert_info(alice.certs / ("%s.pem" % name))
        assert by_name[name]["serial"] == serial
        info = json.loads(run_ok(net.snoop, "inspect", "--json",
                                 alice.certs / ("%s.pem" % name)).stdout)
        assert by_name[name]["not_after"] == info["not_after"]
        assert by_name[name]["address"] == info["address"]
        assert by_name[name]["revoked"] is False
        assert by_name[name]["revoked_at"] is None
    assert {r[0]: r[4] for r in rows}["alice"] == "current"

    # A revoked certificate shows as revoked, with the time.
    victim = fresh_name("victim")
    name, key, res = wire_enroll(net.ca, net.token(victim), name=victim)
    assert res.ok, res
    run_ok(net.snoop, "revoke", net.ca.state, victim)
    rows, js = ca_list(net)
    row = [r for r in rows if r[0] == victim]
    assert len(row) == 1 and re.fullmatch(
        r"revoked \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[0][4]), rows
    j = [j for j in js if j["name"] == victim][0]
    assert j["revoked"] is True and j["current"] is False
    assert j["serial"] == format(res.cert.serial_number, "X").rjust(
        len(j["serial"]), "0")
    r = net.snoop.run("ca-list", alice.state)
    assert r.returncode == 2 and "not a CA" in one_line(r), r


# --- token --list / --revoke ---------------------------------------------------

def test_token_list_and_revoke(net):
    snoop, state = net.snoop, net.ca.state
    short = fresh_name("short")
    net.token(short, ttl="1s")
    keep, drop = fresh_name("keep"), fresh_name("drop")
    tok_keep, tok_drop = net.token(keep), net.token(drop)
    out = run_ok(snoop, "token", state, "--list").stdout
    assert out.splitlines()[0].split() == ["ID", "NAME", "EXPIRES"]
    listed = {l.split()[0]: l.split()[1] for l in out.splitlines()[1:]}
    assert listed[token_id(tok_keep)] == keep
    assert listed[token_id(tok_drop)] == drop
    # Never the secret, whole or as its base64 tail.
    for tok in (tok_keep, tok_drop):
        assert tok not in out and tok[-40:] not in out
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out)

    r = run_ok(snoop, "token", state, "--revoke", token_id(tok_drop))
    assert drop in r.stdout
    again = run_ok(snoop, "token", state, "--revoke", token_id(tok_drop))
    assert "already revoked" in again.stdout
    _, _, res = wire_enroll(net.ca, tok_drop, name=drop)
    assert "revoked" in refusal(res), res
    # The other token is untouched, and once used it is gone from the list.
    time.sleep(1.2)  # the 1 s token has expired by now
    out = run_ok(snoop, "token", state, "--list").stdout
    assert token_id(tok_drop) not in out and short not in out
    assert token_id(tok_keep) in out
    _, _, res = wire_enroll(net.ca, tok_keep, name=keep)
    assert res.ok, res
    assert token_id(tok_keep) not in run_ok(snoop, "token", state,
                                            "--list").stdout
    # A used token cannot be withdrawn; unknown and malformed ids.
    r = snoop.run("token", state, "--revoke", token_id(tok_keep))
    assert r.returncode == 2 and "snoopfs revoke" in one_line(r), r
    r = snoop.run("token", state, "--revoke", "0123456789abcdef")
    assert r.returncode == 2 and "no token with id" in one_line(r), r
    r = snoop.run("token", state, "--revoke", "xyz")
    assert r.returncode == 1 and "16 hex digits" in one_line(r), r
    assert snoop.run("token", state, "--list", "bob").returncode == 1
    assert snoop.run("token", state, "--list", "--revoke",
                     "0123456789abcdef").returncode == 1


# --- ca-backup and ca-restore ----------------------------------------------------

def check_backup(path, tmp_path):
    """A backup as the standard tools see it; the registry's row count."""
    assert file_mode(path) == 0o600
    with tarfile.open(str(path)) as tf:
        names = tf.getnames()
    assert names == ["snoopfs-ca-backup"] + [
        "snoopfs-ca-backup/" + m for m in MEMBERS], names
    out = tmp_path / ("x-" + path.name)
    out.mkdir()
    r = subprocess.run(["tar", "-xf", str(path), "-C", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    top = out / "snoopfs-ca-backup"
    r = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"],
                       cwd=str(top), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert file_mode(top / "root.key") == 0o600
    assert "format=1" in (top / "BACKUP").read_text()
    db = sqlite3.connect(str(top / "registry.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT count(*) FROM certs").fetchone()[0]
    finally:
        db.close()


def registry_rows(state):
    db = sqlite3.connect(str(state / "registry.db"), timeout=10)
    try:
        return db.execute("SELECT count(*) FROM certs").fetchone()[0]
    finally:
        db.close()


def crl_number(node):
    text = node.snoop.run("inspect", node.certs / "crl.pem").stdout
    m = re.search(r"CRL number:\s+(\d+)", text)
    return int(m.group(1)) if m else -1


def crl_lists(node, serial):
    r = openssl("crl", "-noout", "-text", "-in", str(node.certs / "crl.pem"))
    return serial in r.stdout.replace(":", "").upper()


def send_and_wait(sender, receiver, rel, data, timeout=90):
    folder = receiver.name
    sender.write_bytes("outbox/%s/%s" % (folder, rel), data)
    ok = wait_until(lambda: receiver.exists("inbox/%s/%s" % (sender.name, rel))
                    and receiver.read_bytes("inbox/%s/%s" % (sender.name, rel))
                    == data, timeout, interval=0.25)
    assert ok, "%s -> %s %s not delivered\n%s" % (
        sender.name, receiver.name, rel, sender.log_tail())


def test_backup_and_restore(cluster, tmp_path):
    lib = libfaketime()
    c = cluster
    c.init_ca("ca", mount=False)
    ca = c.ca
    ca.mount("--refresh", str(REFRESH))
    alice = c.add_node("alice", extra=("--refresh", str(REFRESH)))
    bob = c.add_node("bob", extra=("--refresh", str(REFRESH)))
    c.wait_all_know_all()

    # Tokens: one used before the backup, one left unused.
    used_name = fresh_name("used")
    used_tok = c.token(used_name)
    _, _, res = wire_enroll(ca, used_tok, name=used_name)
    assert res.ok, res
    spare_name = fresh_name("spare")
    spare_tok = c.token(spare_name)
    client = fresh_name("client")
    _, client_key, res = wire_enroll(ca, c.token(client), client)
    assert res.ok, res
    storm = [(fresh_name("storm"), None) for _ in range(8)]
    storm = [(n, c.token(n)) for n, _ in storm]

    # Back up again and again while clients enroll and files travel.
    before = registry_rows(ca.state)
    enrolled = []

    def enroll_all():
        for n, tok in storm:
            enrolled.append(wire_enroll(ca, tok, name=n)[2].ok)
    th = threading.Thread(target=enroll_all, daemon=True)
    th.start()
    alice.write_bytes("outbox/bob/during.bin", os.urandom(300000))
    bob.write_bytes("outbox/ca/during.txt", b"to the CA\n")
    backups, counts = [], []
    while th.is_alive() or not backups:
        path = tmp_path / ("ca-%d.backup" % len(backups))
        r = run_ok(c.snoop, "ca-backup", ca.state, path)
        assert "root key" in r.stdout
        backups.append(path)
        counts.append(check_backup(path, tmp_path))
    th.join(60)
    assert all(enrolled) and len(enrolled) == len(storm)
    assert counts == sorted(counts), counts
    assert before <= counts[0] and counts[-1] <= registry_rows(ca.state)
    backup = backups[-1]
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name or
                ".registry" in p.name], "a temporary file was left"
    send_and_wait(alice, bob, "delivered.txt", b"before the restore\n")
    assert wait_until(lambda: not bob.exists("outbox/ca/during.txt"), 90)

    # After the backup: a message the original sees (a recording to
    # replay), and a revocation it signs (so its CRL numbers run ahead of
    # the backup's).
    captured = w.build("get/crt", "", client, key=client_key)
    assert w.exchange(ca.addr, captured).status == "ok"
    late = fresh_name("late")
    _, _, res = wire_enroll(ca, c.token(late), name=late)
    assert res.ok, res
    run_ok(c.snoop, "revoke", ca.state, late)
    late_serial = format(res.cert.serial_number, "X")
    assert wait_until(lambda: crl_lists(alice, late_serial), CRL_TIMEOUT), (
        alice.log_tail())
    old_crl = crl_number(alice)
    ca.unmount()

    # Refusals: an existing STATE, truncated or damaged files.
    restored = Node(c.snoop, "ca2", c.base, ca.port, is_ca=True)
    c.nodes["ca2"] = restored
    restored.name = "ca"  # its node name, as the others know it
    r = c.snoop.run("ca-restore", backup, alice.state)
    assert r.returncode == 2 and "exists" in one_line(r), r
    data = backup.read_bytes()
    bad = tmp_path / "bad.backup"
    cuts = [100, 600, 5000, len(data) // 2, len(data) - 1024, len(data) - 1]
    flips = [200, 1024 + 300, len(data) // 2, len(data) - 1500]
    for i, variant in enumerate([data[:n] for n in cuts] + [
            data[:k] + bytes([data[k] ^ 0x20]) + data[k + 1:] for k in flips]):
        bad.write_bytes(variant)
        r = c.snoop.run("ca-restore", bad, restored.state)
        assert r.returncode == 2, (i, r.stdout, r.stderr)
        assert re.search(r"truncated|damaged|incomplete|not a snoopfs",
                         one_line(r)), (i, r.stderr)
        assert not restored.state.exists(), i
        assert not list(c.base.glob(".ca2-state.restore.*")), i

    r = run_ok(c.snoop, "ca-restore", backup, restored.state)
    assert "revoke again" in r.stdout, r.stdout
    assert file_mode(restored.state) == 0o700
    for key in ("root.key", "node.key", "registry.db", "node.conf"):
        assert file_mode(restored.state / key) == 0o600, key
    r = c.snoop.run("ca-restore", backup, restored.state)
    assert r.returncode == 2 and "exists" in one_line(r), r
    restored.mount("--refresh", str(REFRESH))

    # The recording is refused although the restored CA never saw it.
    again = w.exchange(ca.addr, captured.body)
    assert again is not None and again.status == "error", again
    assert "restored from a backup" in again.extra.get("error", ""), again
    assert w.get_crt(ca.addr, "", client, client_key)[1].status == "ok"

    # The nodes keep delivering to each other and to and from the CA.
    send_and_wait(alice, bob, "after.txt", b"after the restore\n")
    send_and_wait(bob, alice, "back.txt", b"and back\n")
    send_and_wait(alice, restored, "to-ca.txt", b"to the restored CA\n")
    send_and_wait(restored, bob, "from-ca.txt", b"from the restored CA\n")

    # Tokens: used stays used, unused still works, a new one works.
    _, _, res = wire_enroll(ca, used_tok, name=used_name)
    assert "already used" in refusal(res), res
    _, _, res = wire_enroll(ca, spare_tok, name=spare_name)
    assert res.ok, res
    newcomer = fresh_name("new")
    _, _, res = wire_enroll(ca, run_ok(c.snoop, "token", restored.state,
                                       newcomer).stdout.split()[0],
                            name=newcomer)
    assert res.ok, res
    names = {row[0] for row in ca_list(c, restored.state)[0]}
    assert {"alice", "bob", "ca", used_name, spare_name, newcomer} <= names

    # Its revocations reach the nodes: its CRL numbers are above the
    # original's although the backup was taken before the original's last.
    run_ok(c.snoop, "revoke", restored.state, newcomer)
    new_serial = format(res.cert.serial_number, "X")
    assert wait_until(lambda: crl_lists(alice, new_serial), CRL_TIMEOUT), (
        alice.log_tail())
    assert crl_number(alice) > old_crl
    assert "older than the one" not in alice.log.read_text(errors="replace")

    # Five days on, alice renews with the restored CA and still delivers.
    if lib is None:
        return
    serial0 = cert_info(alice.state / "node.pem")[0]
    for node in (alice, bob, restored):
        node.unmount()
    travel(c.snoop, lib, "+5d")
    try:
        restored.mount()
        alice.mount()
        bob.mount()
        assert wait_until(lambda: cert_info(alice.state / "node.pem")[0]
                          != serial0, RENEW_TIMEOUT, interval=0.5), (
            alice.log_tail())
        send_and_wait(alice, bob, "renewed.txt", b"renewed\n")
    finally:
        travel(c.snoop, lib, None)
