"""A node's addresses: --listen (what it binds) and --advertise (what peers
use and its certificate carries), on 127.0.0.1; test_hosts.py does the
same across hosts.

A wildcard is bound but never advertised: ca-init and a first mount refuse
one without --advertise and say what to add, and the CA refuses to certify
one. A first mount checks what it can alone (STATE, the mount point, the
port) before it spends its join token; if it fails after enrolling, the
next mount takes the key and certificate it got. A later mount applies a
new address (the CA certifies it over the renew request, same key, before
the node serves) or refuses with a reason. A renew request names the
address asked for; "" (nodes before --advertise) keeps the old one.
"""

import os
import socket

import pytest
from cryptography import x509

import snoopwire
from snoopnodes import (HOST, Node, free_port, genkey, module_cluster,
                        sha256_bytes, wait_delivered, wait_until)


def build(c):
    c.init_ca("ca")
    c.add_node("alice")
    c.wait_all_know_all()


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "addresses", build)


_count = [0]


def new_node(c):
    """A node of cluster C that is not enrolled yet (torn down with C)."""
    _count[0] += 1
    name = "ad%d-%d" % (os.getpid() % 1000, _count[0])
    node = Node(c.snoop, name, c.base, free_port())
    c.nodes[name] = node
    node.state.mkdir(mode=0o700)
    genkey(node.state / "node.key")
    return node


def first_mount(c, node, *args, token=None, expect_rc=0):
    return node.mount("--name", node.name, "--ca", c.ca.addr, "--join",
                      token or c.token(node.name), *args, expect_rc=expect_rc)


def san(cert):
    """The address a certificate (cryptography) carries."""
    uris = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier)
    assert len(uris) == 1 and uris[0].startswith("snoop://"), uris
    return uris[0][len("snoop://"):]


def pem_address(path):
    return san(snoopwire.load_cert(path.read_bytes()))


def spent(c, name):
    """True once NAME's token is no longer listed as open."""
    r = c.snoop.run("token", c.ca.state, "--list")
    assert r.returncode == 0, r.stderr
    return name not in r.stdout


def last_line(r):
    return [l for l in r.stderr.splitlines() if l.strip()][-1]


def test_wildcard_needs_advertise(net, tmp_path):
    s = net.snoop
    port = free_port()
    r = s.run("ca-init", tmp_path / "ca2", "--name", "ca",
              "--listen", "0.0.0.0:%d" % port)
    assert r.returncode == 1, r.stderr
    assert "add --advertise" in r.stderr, r.stderr
    assert not (tmp_path / "ca2").exists()
    r = s.run("ca-init", tmp_path / "ca2", "--name", "ca",
              "--listen", "::1:7100")
    assert r.returncode == 1 and "in brackets: [::1]:7100" in r.stderr, r.stderr

    node = new_node(net)
    tok = net.token(node.name)
    r = first_mount(net, node, "--listen", "0.0.0.0:%d" % node.port,
                    token=tok, expect_rc=1)
    assert "add --advertise HOST:%d" % node.port in last_line(r), r.stderr
    r = first_mount(net, node, "--listen", node.addr, "--advertise",
                    "[::]:%d" % node.port, token=tok, expect_rc=1)
    assert "is a wildcard" in last_line(r), r.stderr
    r = first_mount(net, node, "--listen", "::1:%d" % node.port, token=tok,
                    expect_rc=1)
    assert "in brackets: [::1]:%d" % node.port in last_line(r), r.stderr
    assert not (node.state / "node.pem").exists() and not spent(net, node.name)
    # Bound to every address, advertising one: the certificate has that one.
    first_mount(net, node, "--listen", "0.0.0.0:%d" % node.port,
                "--advertise", node.addr, token=tok)
    assert pem_address(node.state / "node.pem") == node.addr
    st = net.snoop.run("status", node.mnt).stdout
    assert "listening:   0.0.0.0:%d" % node.port in st, st
    assert "advertised:  %s" % node.addr in st, st
    alice = net.nodes["alice"]
    assert wait_until(lambda: node.name in alice.cert_names(), 20)
    body = b"to the node bound to 0.0.0.0\n"
    alice.write_bytes("outbox/%s/wild.txt" % node.name, body)
    wait_delivered(node, "alice", "wild.txt", sha256_bytes(body))


def test_ca_never_certifies_a_wildcard(net):
    """An enrollment (as a node before --advertise would send it) and a
    renewal that ask for 0.0.0.0 are refused; renew with args "" keeps the
    address and with an address moves there, for the same key only."""
    name = "wire-%d" % (os.getpid() % 1000)
    key = snoopwire.new_key()
    tok = net.token(name)
    res = snoopwire.enroll(net.ca.addr, name, key, "0.0.0.0:7001", token=tok)
    assert not res.ok and "wildcard" in str(res.reply), res.reply
    assert "--advertise" in str(res.reply), res.reply
    # The refusal did not spend the token.
    first = "127.0.0.1:%d" % free_port()
    res = snoopwire.enroll(net.ca.addr, name, key, first, token=tok)
    assert res.ok and san(res.cert) == first, res.reply

    def renew(args):
        req = snoopwire.build("renew", args, name, key=key,
                              payload=snoopwire.make_csr(key, name))
        reply = snoopwire.exchange(net.ca.addr, req)
        assert reply is not None
        return reply
    reply = renew("")
    assert reply.status == "ok", reply
    cert = snoopwire.load_cert(reply.payload)
    assert san(cert) == first
    snoopwire.remember(name, key, cert, res.root)
    reply = renew("[::]:7001")
    assert reply.status == "error" and "wildcard" in str(reply), reply
    moved = "127.0.0.1:%d" % free_port()
    reply = renew(moved)
    assert reply.status == "ok", reply
    assert san(snoopwire.load_cert(reply.payload)) == moved


def test_first_mount_checks_before_the_token(net, tmp_path):
    """A port in use and a missing mount point fail the first mount before
    it asks the CA for anything: the token stays unspent and a mount with
    the problem gone enrolls with it."""
    node = new_node(net)
    tok = net.token(node.name)
    with socket.socket() as taken:
        taken.bind((HOST, node.port))
        taken.listen()
        r = first_mount(net, node, "--listen", node.addr, token=tok,
                        expect_rc=2)
    assert "cannot listen on %s" % node.addr in last_line(r), r.stderr
    assert "nothing was sent to the CA" in last_line(r), r.stderr
    mnt = node.mnt
    node.mnt = tmp_path / "no-such-dir"
    r = first_mount(net, node, "--listen", node.addr, token=tok, expect_rc=2)
    node.mnt = mnt
    assert "no-such-dir" in last_line(r), r.stderr
    assert not (node.state / "node.pem").exists()
    assert not spent(net, node.name)
    first_mount(net, node, "--listen", node.addr, token=tok)
    assert spent(net, node.name)


def test_failed_mount_after_enrolling_keeps_the_identity(net):
    """A first mount that enrolls and then fails (FUSE refuses an option)
    leaves the key and certificate: the next mount, without a token and at
    another port, uses them and has the CA certify the new port."""
    node = new_node(net)
    r = first_mount(net, node, "--listen", node.addr, "-o", "no_such_option",
                    expect_rc=2)
    assert (node.state / "node.pem").exists(), r.stderr
    assert spent(net, node.name)
    key = (node.state / "node.key").read_bytes()
    node.port = free_port()
    node.mount("--listen", node.addr)
    assert (node.state / "node.key").read_bytes() == key
    assert pem_address(node.state / "node.pem") == node.addr
    alice = net.nodes["alice"]
    assert wait_until(lambda: node.name in alice.cert_names() and pem_address(
        alice.certs / (node.name + ".pem")) == node.addr, 20)


def test_later_mount_applies_or_refuses(net):
    """On an enrolled node: a new --listen moves it (same key, the CA and
    the peers learn the address); options that cannot apply are refused
    with the reason; a move the CA cannot certify (it is down) is refused
    and leaves node.conf as it was."""
    c = net
    alice = c.nodes["alice"]
    alice.unmount()
    for args, why in ((("--ca-fingerprint", "sha256:" + "00" * 32),
                       "trusts the CA root"),
                      (("--key-bits", "3072"), "has 2048 bits"),
                      (("--name", "bob"), "belongs to node 'alice'")):
        r = alice.mount(*args, expect_rc=1)
        assert why in last_line(r), r.stderr
    key = (alice.state / "node.key").read_bytes()
    alice.port = free_port()
    alice.mount("--listen", alice.addr)
    assert (alice.state / "node.key").read_bytes() == key
    assert pem_address(alice.state / "node.pem") == alice.addr
    assert "listen=%s\n" % alice.addr in (alice.state / "node.conf").read_text()
    assert wait_until(lambda: pem_address(c.ca.certs / "alice.pem")
                      == alice.addr, 10)
    c.ca.write_bytes("outbox/alice/after-move.txt", b"moved\n")
    wait_delivered(alice, "ca", "after-move.txt", sha256_bytes(b"moved\n"))

    alice.unmount()
    c.ca.unmount()
    r = c.ca.mount("--ca", alice.addr, expect_rc=1)
    assert "is the CA itself" in last_line(r), r.stderr
    conf = (alice.state / "node.conf").read_text()
    r = alice.mount("--listen", "127.0.0.1:%d" % free_port(), expect_rc=2)
    assert "cannot move to" in last_line(r), r.stderr
    assert "the certificate still says %s" % alice.addr in last_line(r)
    assert (alice.state / "node.conf").read_text() == conf
    c.ca.mount()
    alice.mount()
