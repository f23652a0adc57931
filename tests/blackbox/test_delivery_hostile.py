"""post/blob spoken raw against bob: every broken or hostile blob is refused.

The sender is "raw-sender", a node that exists only on the wire: the test
enrolls it with the CA over get/csr and hands its certificate to bob with
post/crt, so bob knows it. Each hostile case must end in an error reply or
a dropped connection, nothing may appear in bob's inbox (neither the
mounted tree nor STATE/inbox) or anywhere outside it, and bob must then
still take a valid blob from the same sender.
"""

import base64
import hashlib
import os
import secrets
import socket
import struct
import threading
import time

import pytest
from cryptography.exceptions import InvalidTag

import snoopwire as w
from snoopnodes import (DELIVERY_TIMEOUT, build_ca_and, module_cluster,
                        sha256_bytes, tree_files, wait_delivered, wire_peer)

SENDER = "raw-sender"
HOSTILE_TIMEOUT = 15      # seconds a refusal may take


build = build_ca_and("bob")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "hostile", build)


@pytest.fixture(scope="module")
def sender(net):
    """An enrolled wire-only node that bob knows."""
    return wire_peer(net, SENDER, known_by=("bob",))


@pytest.fixture(scope="module")
def certs(net):
    bob = net.nodes["bob"]
    return {"bob": bob.cert("bob"), "ca": bob.cert("ca")}


# --- the test's own blob sealing, checked against the brief --------------------

def test_sealing_helper_matches_the_spec():
    data = os.urandom(2 * 65536 + 5)
    key, blob_id, chunks = w.seal_blob(data)
    assert [len(c) for c in chunks] == [65536 + 16, 65536 + 16, 5 + 16]
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    for n, c in enumerate(chunks):
        nonce = bytes(3) + n.to_bytes(8, "big") + bytes([n == 2])
        assert AESGCM(key).decrypt(nonce, c, blob_id) == data[n * 65536:(n + 1) * 65536]
    with pytest.raises(InvalidTag):
        w.open_chunk(key, blob_id, 2, False, chunks[2])
    assert [len(c) for c in w.seal_blob(b"")[2]] == [16]
    assert w.blob_chunks(0) == 1 and w.blob_chunks(65536) == 1 and w.blob_chunks(65537) == 2
    frame = w.chunk_frame(7, b"abc")
    assert frame == b"\0\0\0\x0b" + b"\0" * 7 + b"\x07abc"


def _reference_receiver(listener, bob, sender_pub, store):
    """A minimal receiver written from the brief, for the self-test below."""
    bob_key = bob.key
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        conn = w.server_wrap(conn, bob)
        m = w.parse(w.recv_frame(conn))

        def reply(**extra):
            extra = dict(extra, re=m.message_id)
            w.send_frame(conn, w.build("reply", "post/blob", "bob", key=bob_key,
                                       extra=extra).body)
        if not m.verify_with(sender_pub) or m.method != "post/blob":
            return reply(status="error", error="bad signature")
        e = m.extra
        key = bob_key.decrypt(base64.b64decode(e["key:bob"]), w.oaep())
        blob_id = bytes.fromhex(e["id"])
        if e["chunks"] != w.blob_chunks(e["size"]):
            return reply(status="error", error="size and chunks disagree")
        reply(status="ok", have=0)
        h, parts = hashlib.sha256(), []
        try:
            for i in range(e["chunks"]):
                body = w.recv_frame(conn)
                index = struct.unpack(">Q", body[:8])[0]
                if index != i:
                    raise ValueError("index")
                parts.append(w.open_chunk(key, blob_id, i, i == e["chunks"] - 1, body[8:]))
                h.update(body[8:])
        except (ValueError, InvalidTag):
            return reply(status="error", error="bad chunk")
        if "sha256:" + h.hexdigest() != e["sha256"]:
            return reply(status="error", error="hash")
        store[m.args] = b"".join(parts)
        reply(status="ok", sha256=e["sha256"])


def test_blob_client_against_reference_receiver():
    bob_key, alice_key = w.new_key(), w.new_key()
    # Both ends speak mutual TLS under a root of the test's own.
    root = w.make_root()
    bob = w.make_identity("bob", bob_key, root)
    alice = w.make_identity("alice", alice_key, root)
    for case in ("good", "flipped"):
        listener = socket.create_server(("127.0.0.1", 0))
        store = {}
        t = threading.Thread(target=_reference_receiver, daemon=True,
                             args=(listener, bob, alice_key.public_key(), store))
        t.start()
        addr = "127.0.0.1:%d" % listener.getsockname()[1]
        data = os.urandom(2 * 65536 + 3)
        if case == "good":
            out = w.send_file(addr, "alice", alice_key, "d/f.bin", data, ["bob"],
                              {"bob": bob_key}, as_node=alice)
            assert out.accepted and out.final.verify_with(bob_key.public_key()), out
            assert store == {"d/f.bin": data}
        else:
            key, blob_id, chunks = w.seal_blob(data)
            chunks = flip_bit(key, blob_id, data, chunks)
            extra = w.blob_extra(blob_id, len(data), len(chunks), ["bob"],
                                 {"bob": w.wrap_key(bob_key, key)}, w.sealed_hash(chunks))
            out = w.post_blob(addr, "alice", alice_key, "x", chunks, extra, timeout=10,
                              as_node=alice)
            assert not out.accepted and out.final.status == "error", out
            assert store == {}
        t.join(10)
        listener.close()


# --- helpers ----------------------------------------------------------------------

def snapshot(bob):
    """What bob shows and keeps as received: its inbox tree and STATE/inbox."""
    return (bob.files("inbox"), tree_files(bob.state / "inbox"))


def bob_sig_ok(bob_cert, msg):
    """A signed message from bob must verify with bob's certificate."""
    if msg is not None and msg.is_signed():
        assert msg.verify_with(bob_cert), "bob's reply does not verify: %r" % msg


def assert_refused(out, bob_cert, allow_close=False):
    assert not out.accepted, "bob sent a receipt for a hostile blob: %r" % out
    if not allow_close:
        assert not out.timed_out, "bob neither answered nor dropped: %r" % out
    for m in (out.reply, out.final):
        if m is None:
            continue
        m.check_shape()
        assert m.method == "reply", m
        bob_sig_ok(bob_cert, m)
        if m.status != "ok":
            assert m.status == "error", m
            assert isinstance(m.extra.get("error"), str) and m.extra["error"], m
            assert m.message["payload"] is None
    if out.reply is not None and out.reply.status == "ok":
        # Accepted at first sight: the refusal must have come with the chunks.
        assert (out.final is not None and out.final.status == "error") or \
            out.dropped or allow_close, out


_done = {"n": 0}


def assert_serves(net, sender, certs, before):
    """After a refusal: nothing new, and a valid blob from SENDER gets through."""
    bob = net.nodes["bob"]
    after = snapshot(bob)
    assert after == before, "bob's inbox changed: %s -> %s" % (before, after)
    _done["n"] += 1
    name = "valid-%d.bin" % _done["n"]
    data = os.urandom(65536 + 1000)
    out = w.send_file(bob.addr, sender.name, sender.key, name, data, ["bob"], certs)
    assert out.reply is not None, "bob dropped a valid post/blob: %r" % out
    w.check_reply_to(out.reply, out.request, "post/blob")
    assert out.reply.status == "ok", "valid post/blob refused: %r" % out.reply.extra
    assert out.reply.verify_with(certs["bob"])
    assert out.accepted, "no receipt for a valid blob: %r" % out
    assert out.final.verify_with(certs["bob"]), "receipt not signed by bob"
    assert out.final.extra.get("sha256") == out.request.meta["extra"]["sha256"], (
        "receipt hash %r" % out.final.extra)
    wait_delivered(bob, sender.name, name, sha256_bytes(data), size=len(data),
                   timeout=DELIVERY_TIMEOUT)
    assert bob.read_bytes("inbox/%s/%s" % (sender.name, name)) == data


def good_blob(certs, data=None, recipients=("bob",)):
    data = os.urandom(3 * 65536 + 17) if data is None else data
    key, blob_id, chunks = w.seal_blob(data)
    wrapped = {r: w.wrap_key(certs[r], key) for r in recipients}
    extra = w.blob_extra(blob_id, len(data), len(chunks), list(recipients), wrapped,
                         w.sealed_hash(chunks))
    return data, key, blob_id, chunks, extra


@pytest.fixture
def fresh(net, sender, certs):
    """The snapshot of bob's inbox before a case (see assert_serves)."""
    return snapshot(net.nodes["bob"])


# --- paths ------------------------------------------------------------------------

ESCAPES = {
    "dotdot": "../{leaf}",
    "dotdot-deep": "a/../../{leaf}",
    "dotdot-only": "..",
    "dot-only": ".",
    "absolute": "/etc/{leaf}",
    "absolute-tmp": "/tmp/{leaf}",
    "double-slash": "a//{leaf}",
    "dot-part": "a/./{leaf}",
    "leading-dot-slash": "./{leaf}",
    "trailing-slash": "{leaf}/",
    "empty": "",
    "nul": "a\u0000{leaf}",
    "nul-dotdot": "{leaf}\u0000/../../x",
}


def leaf_anywhere(base, leaf):
    hits = []
    for root, dirs, files in os.walk(str(base)):
        dirs[:] = [d for d in dirs if not d.endswith("-mnt")]
        hits += [os.path.join(root, f) for f in files + dirs if leaf in f]
    return hits


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_path_refused(net, sender, certs, fresh, case):
    bob = net.nodes["bob"]
    leaf = "esc-" + secrets.token_hex(6)
    path = ESCAPES[case].format(leaf=leaf)
    data, key, blob_id, chunks, extra = good_blob(certs, data=b"escape attempt\n")
    out = w.post_blob(bob.addr, sender.name, sender.key, path, chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert not leaf_anywhere(net.base.parent, leaf), leaf_anywhere(net.base.parent, leaf)
    for outside in ("/etc", "/tmp", "/"):
        assert not os.path.exists(os.path.join(outside, leaf)), "wrote %s/%s" % (outside, leaf)
    assert not bob.exists("inbox/%s" % leaf)
    assert_serves(net, sender, certs, fresh)


# --- who sends --------------------------------------------------------------------


def test_unknown_sender_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    stranger = w.new_key()
    data, key, blob_id, chunks, extra = good_blob(certs)
    out = w.post_blob(bob.addr, "mallory", stranger, "from-mallory.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert not bob.exists("inbox/mallory")
    assert_serves(net, sender, certs, fresh)


def test_bad_signature_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    forger = w.new_key()
    out = w.post_blob(bob.addr, sender.name, forger, "forged.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_tampered_signature_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)

    def flipped(m):
        sig = bytearray(w.sign(sender.key, m))
        sig[10] ^= 0x01
        return bytes(sig)
    out = w.post_blob(bob.addr, sender.name, None, "tampered-sig.bin", chunks, extra,
                      sign_with=flipped, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_unsigned_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    out = w.post_blob(bob.addr, sender.name, None, "unsigned.bin", chunks, extra,
                      unsigned=True, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_impersonating_bob_refused(net, sender, certs, fresh):
    """A blob that claims to come from bob itself, signed with another key."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    out = w.post_blob(bob.addr, "bob", sender.key, "from-self.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


# --- chunks -----------------------------------------------------------------------


def with_chunks(certs, chunks_fn, data=None, extra_fn=None):
    """A blob whose sealed chunks CHUNKS_FN rewrites; the declared hash covers
    what is sent, so only the chunk encryption can catch the damage."""
    data, key, blob_id, chunks, extra = good_blob(certs, data=data)
    sent = chunks_fn(key, blob_id, data, list(chunks))
    extra["chunks"] = len(sent)
    extra["sha256"] = w.sealed_hash(sent)
    if extra_fn:
        extra_fn(extra, data)
    return sent, extra


def flip_bit(key, blob_id, data, chunks):
    c = bytearray(chunks[1])
    c[1000] ^= 0x10
    chunks[1] = bytes(c)
    return chunks


def flip_tag_bit(key, blob_id, data, chunks):
    c = bytearray(chunks[-1])
    c[-1] ^= 0x01
    chunks[-1] = bytes(c)
    return chunks


def swap(key, blob_id, data, chunks):
    chunks[0], chunks[1] = chunks[1], chunks[0]
    return chunks


def final_flag_missing(key, blob_id, data, chunks):
    """Truncated: the first two chunks only, the last of them not final."""
    return chunks[:2]


def final_flag_early(key, blob_id, data, chunks):
    """The final flag on a chunk that is not the last."""
    n = len(chunks)
    chunks[1] = w.seal_chunk(key, blob_id, 1, True, data[65536:2 * 65536])
    assert n == 4
    return chunks


def spliced(key, blob_id, data, chunks):
    """Chunk 1 taken from another blob under the same key but another id."""
    other_id = secrets.token_bytes(16)
    chunks[1] = w.seal_chunk(key, other_id, 1, False, data[65536:2 * 65536])
    return chunks


def repeated(key, blob_id, data, chunks):
    """Chunk 0 sent in the place of chunk 1 (same length, wrong index)."""
    chunks[1] = chunks[0]
    return chunks


CHUNK_CASES = {
    "flipped-bit": (flip_bit, None),
    "flipped-tag": (flip_tag_bit, None),
    "swapped": (swap, None),
    "final-flag-missing": (final_flag_missing,
                           lambda e, d: e.update(size=2 * 65536)),
    "final-flag-early": (final_flag_early, None),
    "spliced": (spliced, None),
    "repeated": (repeated, None),
}


@pytest.mark.parametrize("case", sorted(CHUNK_CASES))
def test_bad_chunks_refused(net, sender, certs, fresh, case):
    bob = net.nodes["bob"]
    fn, extra_fn = CHUNK_CASES[case]
    sent, extra = with_chunks(certs, fn, extra_fn=extra_fn)
    out = w.post_blob(bob.addr, sender.name, sender.key, "chunks-%s.bin" % case, sent,
                      extra, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert not bob.exists("inbox/%s/chunks-%s.bin" % (sender.name, case))
    assert_serves(net, sender, certs, fresh)


def test_truncated_then_closed(net, sender, certs, fresh):
    """Two of four chunks, then the sender goes away: nothing appears."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    out = w.post_blob(bob.addr, sender.name, sender.key, "cut.bin", chunks, extra,
                      frames=list(enumerate(chunks[:2])), close_early=True,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"], allow_close=True)
    time.sleep(1.0)     # give bob a moment to notice the close
    assert not bob.exists("inbox/%s/cut.bin" % sender.name)
    assert_serves(net, sender, certs, fresh)


def post_again(bob, sender, path, chunks, extra):
    """post/blob of CHUNKS under a newly signed request (new message_id,
    timestamp, signature); asked again while bob still winds up an earlier
    connection of the same blob."""
    deadline = time.monotonic() + HOSTILE_TIMEOUT
    while True:
        out = w.post_blob(bob.addr, sender.name, sender.key, path, chunks,
                          extra, timeout=HOSTILE_TIMEOUT)
        busy = out.reply is not None and "still in progress" in str(
            out.reply.extra.get("error"))
        if not busy or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_resume_under_a_fresh_request(net, sender, certs):
    """Two of four chunks, the connection closes; a new, freshly signed
    request for the same blob is answered "have" 2, and the other two
    chunks complete it."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    first = w.post_blob(bob.addr, sender.name, sender.key, "resumed.bin", chunks,
                        extra, frames=list(enumerate(chunks[:2])),
                        close_early=True, timeout=HOSTILE_TIMEOUT)
    assert first.reply is not None and first.reply.extra.get("have") == 0, first
    out = post_again(bob, sender, "resumed.bin", chunks, extra)
    assert out.request.message_id != first.request.message_id
    assert out.reply is not None and out.reply.extra.get("have") == 2, out
    assert out.accepted, out
    wait_delivered(bob, sender.name, "resumed.bin", sha256_bytes(data),
                   size=len(data), timeout=DELIVERY_TIMEOUT)


def test_resume_for_other_chunks_starts_over(net, sender, certs):
    """Two chunks of one blob, then a request with the same id and key but
    another signed hash (other content sealed the same way, whose chunks
    would open under that key): bob keeps none of the first chunks, so the
    file is the second content, whole."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    w.post_blob(bob.addr, sender.name, sender.key, "switched.bin", chunks, extra,
                frames=list(enumerate(chunks[:2])), close_early=True,
                timeout=HOSTILE_TIMEOUT)
    other = os.urandom(len(data))
    _, _, chunks2 = w.seal_blob(other, key=key, blob_id=blob_id)
    extra2 = dict(extra, sha256=w.sealed_hash(chunks2))
    out = post_again(bob, sender, "switched.bin", chunks2, extra2)
    assert out.reply is not None and out.reply.extra.get("have") == 0, out
    assert out.accepted, out
    wait_delivered(bob, sender.name, "switched.bin", sha256_bytes(other),
                   size=len(other), timeout=DELIVERY_TIMEOUT)


def test_sha256_mismatch_refused(net, sender, certs, fresh):
    """Sound chunks, but the signed hash names other chunks."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    extra["sha256"] = "sha256:" + sha256_bytes(b"something else")
    out = w.post_blob(bob.addr, sender.name, sender.key, "bad-hash.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_oversized_chunk_frame_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    frames = [(0, chunks[0] + os.urandom(1000))] + list(enumerate(chunks))[1:]
    out = w.post_blob(bob.addr, sender.name, sender.key, "fat-chunk.bin", chunks, extra,
                      frames=frames, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_chunk_index_out_of_range_refused(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    frames = list(enumerate(chunks[:-1])) + [(len(chunks) + 5, chunks[-1])]
    out = w.post_blob(bob.addr, sender.name, sender.key, "far-chunk.bin", chunks, extra,
                      frames=frames, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


# --- keys -------------------------------------------------------------------------


def test_key_wrapped_for_another_node(net, sender, certs, fresh):
    """key:bob holds the content key wrapped for the CA node, not for bob."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    extra["key:bob"] = w.wrap_key(certs["ca"], key)
    out = w.post_blob(bob.addr, sender.name, sender.key, "wrong-wrap.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_bob_not_a_recipient(net, sender, certs, fresh):
    """A blob for the CA node sent to bob."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs, recipients=("ca",))
    out = w.post_blob(bob.addr, sender.name, sender.key, "not-for-bob.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_key_missing(net, sender, certs, fresh):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    del extra["key:bob"]
    out = w.post_blob(bob.addr, sender.name, sender.key, "no-key.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


def test_wrong_content_key(net, sender, certs, fresh):
    """key:bob is a fresh random key, not the one the chunks were sealed with."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    extra["key:bob"] = w.wrap_key(certs["bob"], secrets.token_bytes(32))
    out = w.post_blob(bob.addr, sender.name, sender.key, "other-key.bin", chunks, extra,
                      timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert_serves(net, sender, certs, fresh)


# --- push: a blob of one chunk with its frame right behind the request -------------


def test_push_first_reply_is_the_receipt(net, sender, certs):
    """extra "push": bob reads the chunk without answering "have" first, and
    his one reply is the signed receipt."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs, data=os.urandom(1000))
    out = w.post_blob(bob.addr, sender.name, sender.key, "pushed.bin", chunks, extra,
                      push=True, timeout=HOSTILE_TIMEOUT)
    assert out.accepted, out
    w.check_reply_to(out.reply, out.request, "post/blob")
    assert out.reply.verify_with(certs["bob"]), "receipt not signed by bob"
    assert "have" not in out.reply.extra, out.reply.extra
    assert out.reply.extra.get("sha256") == extra["sha256"], out.reply.extra
    wait_delivered(bob, sender.name, "pushed.bin", sha256_bytes(data), size=len(data),
                   timeout=DELIVERY_TIMEOUT)
    assert bob.read_bytes("inbox/%s/pushed.bin" % sender.name) == data


def test_push_again_is_read_away(net, sender, certs):
    """The same blob pushed again after the user consumed it (its receipt was
    lost, say) gets the receipt again and is not stored again; bob reads the
    pushed chunk away, so the next request on that connection still works."""
    bob = net.nodes["bob"]
    name, later = "push-twice.bin", "push-later.bin"
    data, key, blob_id, chunks, extra = good_blob(certs, data=os.urandom(5000))
    first = w.build("post/blob", name, sender.name, key=sender.key,
                    extra=dict(extra, push=1))
    with w.connect(bob.addr, HOSTILE_TIMEOUT, as_node=sender.name) as s:
        reply = w.push_frames(s, first, enumerate(chunks))
        assert reply.status == "ok" and reply.extra.get("sha256") == extra["sha256"], (
            reply.extra)
    wait_delivered(bob, sender.name, name, sha256_bytes(data), size=len(data),
                   timeout=DELIVERY_TIMEOUT)
    os.unlink(bob.mnt / "inbox" / sender.name / name)

    again = w.build("post/blob", name, sender.name, key=sender.key,
                    extra=dict(extra, push=1))
    ldata, _, _, lchunks, lextra = good_blob(certs, data=os.urandom(7000))
    nxt = w.build("post/blob", later, sender.name, key=sender.key,
                  extra=dict(lextra, push=1))
    with w.connect(bob.addr, HOSTILE_TIMEOUT, as_node=sender.name) as s:
        reply = w.push_frames(s, again, enumerate(chunks))
        assert reply.status == "ok" and reply.verify_with(certs["bob"]), reply.extra
        assert reply.extra.get("sha256") == extra["sha256"], reply.extra
        reply = w.push_frames(s, nxt, enumerate(lchunks))
        w.check_reply_to(reply, nxt, "post/blob")
        assert reply.status == "ok", reply.extra
        assert reply.extra.get("sha256") == lextra["sha256"], reply.extra
    wait_delivered(bob, sender.name, later, sha256_bytes(ldata), size=len(ldata),
                   timeout=DELIVERY_TIMEOUT)
    assert not bob.exists("inbox/%s/%s" % (sender.name, name)), (
        "a blob received before came back after it was consumed")


def push_blob(addr, sender, data_extra_chunks):
    """Pushes a blob of one chunk; returns bob's reply."""
    _, _, _, chunks, extra = data_extra_chunks
    req = w.build("post/blob", "again.bin", sender.name, key=sender.key,
                  extra=dict(extra, push=1))
    with w.connect(addr, HOSTILE_TIMEOUT, as_node=sender.name) as s:
        return w.push_frames(s, req, enumerate(chunks))


def test_record_of_received_blobs_survives_restart(net, sender, certs):
    """Exactly once across a restart: a blob bob stored before he was
    unmounted, pushed again afterwards, gets the receipt and is not stored
    again. So does a blob recorded by an older snoopfs as a .done file:
    bob takes it into received.db at start and removes the file (and the
    temp file of a record a crash cut)."""
    bob = net.nodes["bob"]
    stored = good_blob(certs, data=os.urandom(4000))
    reply = push_blob(bob.addr, sender, stored)
    assert reply.status == "ok", reply.extra
    wait_delivered(bob, sender.name, "again.bin", sha256_bytes(stored[0]),
                   size=len(stored[0]), timeout=DELIVERY_TIMEOUT)
    os.unlink(bob.mnt / "inbox" / sender.name / "again.bin")

    legacy = good_blob(certs, data=os.urandom(2000))
    bob.unmount()
    records = bob.state / "incoming" / sender.name
    records.mkdir(parents=True, exist_ok=True)
    done = records / (legacy[4]["id"] + ".done")
    done.write_text(legacy[4]["sha256"] + "\n")
    cut = records / (legacy[4]["id"] + ".done.tmp.4242")
    cut.write_text("sha256:")
    bob.mount()

    for blob in (stored, legacy):
        reply = push_blob(bob.addr, sender, blob)
        assert reply.status == "ok" and reply.verify_with(certs["bob"]), reply.extra
        assert reply.extra.get("sha256") == blob[4]["sha256"], reply.extra
    time.sleep(0.5)  # a wrongly stored file would be renamed in by now
    assert not bob.exists("inbox/%s/again.bin" % sender.name), (
        "a blob received before the restart was stored again")
    assert not done.exists() and not cut.exists(), sorted(os.listdir(records))
    assert (bob.state / "received.db").is_file()
    assert "took in 1 record of" in bob.log.read_text(), bob.log_tail()


PUSH_REFUSALS = {
    # refused at the request, with the chunk still unread: bob must read it
    # away before closing, or the reset could destroy his reason
    "several-chunks": (3 * 65536 + 17, None, None, "one chunk"),
    "key-for-another-node": (1000, "ca", None, "does not unwrap"),
    # refused at the chunk itself
    "flipped-tag": (1000, None, flip_tag_bit, "does not verify"),
}


@pytest.mark.parametrize("case", sorted(PUSH_REFUSALS))
def test_push_refused_with_reason(net, sender, certs, fresh, case):
    bob = net.nodes["bob"]
    size, wrap_for, chunks_fn, reason = PUSH_REFUSALS[case]
    data, key, blob_id, chunks, extra = good_blob(certs, data=os.urandom(size))
    if wrap_for:
        extra["key:bob"] = w.wrap_key(certs[wrap_for], key)
    if chunks_fn:
        chunks = chunks_fn(key, blob_id, data, chunks)
    out = w.post_blob(bob.addr, sender.name, sender.key, "push-%s.bin" % case, chunks,
                      extra, push=True, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert not out.dropped, "bob's reason was lost: %r" % out
    assert out.reply is not None and reason in out.reply.extra.get("error", ""), out
    assert not bob.exists("inbox/%s/push-%s.bin" % (sender.name, case))
    assert_serves(net, sender, certs, fresh)


# --- sizes, counts and ids ----------------------------------------------------------


def _set(**kv):
    def f(extra):
        extra.update(kv)
    return f


META_CASES = {
    "chunks-too-few": _set(chunks=2),
    "chunks-too-many": _set(chunks=9),
    "size-too-small": _set(size=100),
    "size-too-large": _set(size=5 * 65536),
    "size-negative": _set(size=-1),
    "size-string": _set(size="196625"),
    "chunks-zero": _set(chunks=0),
    "oversized-2^62": _set(size=1 << 62, chunks=1 << 46),
    "oversized-2^41": _set(size=1 << 41, chunks=1 << 25),
    "id-not-hex": _set(id="z" * 32),
    "id-short": _set(id="ab" * 8),
    "id-missing": lambda e: e.pop("id"),
    "sha256-missing": lambda e: e.pop("sha256"),
    "recipients-missing": lambda e: e.pop("recipients"),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_bad_blob_meta_refused(net, sender, certs, fresh, case):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = good_blob(certs)
    META_CASES[case](extra)
    out = w.post_blob(bob.addr, sender.name, sender.key, "meta-%s.bin" % case, chunks,
                      extra, timeout=HOSTILE_TIMEOUT)
    assert_refused(out, certs["bob"])
    assert not bob.exists("inbox/%s/meta-%s.bin" % (sender.name, case))
    assert_serves(net, sender, certs, fresh)
