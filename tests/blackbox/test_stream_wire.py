"""post/stream spoken raw against bob (src/server/receive_stream.c): a
valid stream is stored and receipted once; a forged trailer, a trailer
over other chunks, for another blob or path, replayed, a stream given up
by its sender (STREAM_ABORT) and a forged stream open are each refused,
and nothing appears at bob (neither the inbox tree, nor STATE/inbox, nor
a part file under STATE/incoming), after which bob still takes a valid
blob from the same sender. A missing trailer leaves only the blob's part
(never in the inbox), which refuses a second stream of the blob and which
the post/blob that follows resumes (its "have").
"""

import os
import time

import pytest

import snoopwire as w
from snoopnodes import (build_ca_and, module_cluster, sha256_bytes,
                        tree_files, wait_delivered, wait_until, wire_peer)
from snoopwire_stream import post_stream
from test_delivery_hostile import assert_refused, good_blob, snapshot
from test_stream import unnamed_bytes

SENDER = "raw-streamer"
CHUNK = 65536
TIMEOUT = 15

build = build_ca_and("bob")


@pytest.fixture(scope="module")
def net(fuse_available, snoopfs_bin, tmp_path_factory):
    yield from module_cluster(tmp_path_factory, snoopfs_bin, "streamwire",
                              build)


@pytest.fixture(scope="module")
def sender(net):
    return wire_peer(net, SENDER, known_by=("bob",))


@pytest.fixture(scope="module")
def certs(net):
    bob = net.nodes["bob"]
    return {"bob": bob.cert("bob"), "ca": bob.cert("ca")}


def blob(certs, n=12, tail=1000):
    return good_blob(certs, data=os.urandom(n * CHUNK + tail))


def nothing_new(bob, before):
    assert snapshot(bob) == before, "bob's inbox changed"
    assert wait_until(lambda: not tree_files(bob.state / "incoming"), 10), (
        tree_files(bob.state / "incoming"))
    assert unnamed_bytes(bob) == 0


def valid(bob, sender, certs, name, streamed=8):
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, sender.key, name, chunks, extra,
                      streamed, idle=1, timeout=TIMEOUT)
    assert out.reply is not None and out.reply.status == "ok", out
    assert out.reply.verify_with(certs["bob"])
    assert out.accepted, out
    assert out.final.verify_with(certs["bob"]), "receipt not signed by bob"
    w.check_reply_to(out.final, out.request, "post/blob")
    assert out.final.extra.get("sha256") == extra["sha256"]
    wait_delivered(bob, sender.name, name, sha256_bytes(data),
                   size=len(data))
    assert bob.read_bytes("inbox/%s/%s" % (sender.name, name)) == data
    return out


def test_valid_stream_stored_once(net, sender, certs):
    bob = net.nodes["bob"]
    valid(bob, sender, certs, "streamed.bin")
    # Every chunk streamed before the trailer, and none.
    valid(bob, sender, certs, "all-streamed.bin", streamed=12)
    valid(bob, sender, certs, "none-streamed.bin", streamed=0)
    assert unnamed_bytes(bob) == 0


def test_forged_trailer_refused(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, sender.key, "forged.bin",
                      chunks, extra, 8, trailer_key=w.new_key(),
                      timeout=TIMEOUT)
    assert out.reply.status == "ok"
    assert_refused(out, certs["bob"])
    nothing_new(bob, before)
    valid(bob, sender, certs, "after-forged.bin")


def test_missing_trailer_keeps_part_and_resumes(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, sender.key, "cut.bin", chunks,
                      extra, 10, no_trailer=True, timeout=TIMEOUT)
    assert out.reply.status == "ok" and not out.accepted
    # Only the blob's part is left, and never in the inbox.
    part = "%s/%s.part" % (sender.name, extra["id"])

    def held():
        return tree_files(bob.state / "incoming").get(part, 0)
    assert wait_until(lambda: held() >= 10 * (CHUNK + 16), 10), (
        tree_files(bob.state / "incoming"))
    assert snapshot(bob) == before, "bob's inbox changed"
    assert set(tree_files(bob.state / "incoming")) == {part}
    # A second stream of the blob cannot take the part over.
    again = post_stream(bob.addr, sender.name, sender.key, "cut.bin", chunks,
                        extra, 4, timeout=TIMEOUT)
    assert again.reply is not None and again.reply.status == "error", again
    assert "resume" in again.reply.extra.get("error", ""), again.reply.extra
    # The same blob then comes as post/blob: resumed, stored once.
    out = w.post_blob(bob.addr, sender.name, sender.key, "cut.bin", chunks,
                      extra, timeout=TIMEOUT)
    assert out.accepted, out
    assert out.reply.extra.get("have") == 10, out.reply.extra
    assert out.final.extra.get("sha256") == extra["sha256"]
    wait_delivered(bob, sender.name, "cut.bin", sha256_bytes(data),
                   size=len(data))
    assert bob.read_bytes("inbox/%s/cut.bin" % sender.name) == data
    assert wait_until(lambda: not tree_files(bob.state / "incoming"), 10)


def test_part_of_other_chunks_not_resumed_into_a_file(net, sender, certs):
    """A stream's part holding chunks that open with the key but are not
    the ones the sender signed (what a co-recipient could seal): the
    post/blob that resumes it keeps them, hashed, and the signed sha256
    refuses the whole; nothing shows, and the next try starts afresh."""
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    _, _, other = w.seal_blob(os.urandom(len(data)), key=key,
                              blob_id=blob_id)
    out = post_stream(bob.addr, sender.name, sender.key, "mixed.bin", chunks,
                      extra, 6, stream_chunks=other[:6], no_trailer=True,
                      timeout=TIMEOUT)
    assert out.reply.status == "ok"
    assert wait_until(lambda: tree_files(bob.state / "incoming"), 10)
    out = w.post_blob(bob.addr, sender.name, sender.key, "mixed.bin", chunks,
                      extra, timeout=TIMEOUT)
    assert not out.accepted, out
    assert snapshot(bob) == before, "bob's inbox changed"
    time.sleep(0.5)
    # The part went with the refusal: the next try stores the real file.
    out = w.post_blob(bob.addr, sender.name, sender.key, "mixed.bin", chunks,
                      extra, timeout=TIMEOUT)
    assert out.accepted, out
    assert out.reply.extra.get("have") == 0, out.reply.extra
    wait_delivered(bob, sender.name, "mixed.bin", sha256_bytes(data),
                   size=len(data))
    assert wait_until(lambda: not tree_files(bob.state / "incoming"), 10)


def test_stream_given_up_keeps_nothing(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, sender.key, "abort.bin", chunks,
                      extra, 6, abort=True, timeout=TIMEOUT)
    assert out.reply.status == "ok" and not out.accepted
    nothing_new(bob, before)
    assert "given up by its sender" in bob.log.read_text(errors="replace")


def test_trailer_over_other_chunks_refused(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    # Chunks sealed under the same key and id, of other data: they would
    # open with the key (a co-recipient could make them); only the signed
    # digest tells them apart.
    _, _, other = w.seal_blob(os.urandom(len(data)), key=key,
                              blob_id=blob_id)
    out = post_stream(bob.addr, sender.name, sender.key, "other.bin", chunks,
                      extra, 8, stream_chunks=other[:8], timeout=TIMEOUT)
    assert_refused(out, certs["bob"])
    assert "sha256" in out.final.extra.get("error", ""), out.final.extra
    nothing_new(bob, before)


@pytest.mark.parametrize("case", ["other-id", "other-path", "short-size",
                                  "other-recipients"])
def test_trailer_for_another_blob_refused(net, sender, certs, case):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    t = dict(extra)
    tpath = None
    if case == "other-id":
        t["id"] = os.urandom(16).hex()
    elif case == "other-path":
        tpath = "elsewhere.bin"
    elif case == "short-size":
        t["size"], t["chunks"] = 4 * CHUNK, 4
    else:
        t["recipients"] = "bob,raw-streamer"
    out = post_stream(bob.addr, sender.name, sender.key, "mismatch.bin",
                      chunks, extra, 8, trailer_extra=t, trailer_path=tpath,
                      timeout=TIMEOUT)
    assert_refused(out, certs["bob"], allow_close=True)
    nothing_new(bob, before)


def test_replayed_trailer_refused(net, sender, certs):
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = blob(certs)
    first = post_stream(bob.addr, sender.name, sender.key, "replay.bin",
                        chunks, extra, 8, timeout=TIMEOUT)
    assert first.accepted, first
    wait_delivered(bob, sender.name, "replay.bin", sha256_bytes(data),
                   size=len(data))
    st = os.stat(str(bob.mnt / "inbox" / sender.name / "replay.bin"))
    out = post_stream(bob.addr, sender.name, sender.key, "replay.bin",
                      chunks, extra, 8, trailer=first.request,
                      timeout=TIMEOUT)
    assert_refused(out, certs["bob"], allow_close=True)
    st2 = os.stat(str(bob.mnt / "inbox" / sender.name / "replay.bin"))
    assert (st.st_ino, st.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns)
    assert wait_until(lambda: not tree_files(bob.state / "incoming"), 10)
    assert unnamed_bytes(bob) == 0


def test_stream_of_a_blob_already_received_is_receipted_again(net, sender,
                                                             certs):
    """A sender that lost its receipt streams the blob again with a fresh
    trailer: bob answers with the receipt, reads the chunks after the
    trailer without keeping them, and leaves the file as it was."""
    bob = net.nodes["bob"]
    data, key, blob_id, chunks, extra = blob(certs)
    first = post_stream(bob.addr, sender.name, sender.key, "twice.bin",
                        chunks, extra, 8, timeout=TIMEOUT)
    assert first.accepted, first
    wait_delivered(bob, sender.name, "twice.bin", sha256_bytes(data),
                   size=len(data))
    st = os.stat(str(bob.mnt / "inbox" / sender.name / "twice.bin"))
    again = post_stream(bob.addr, sender.name, sender.key, "twice.bin",
                        chunks, extra, 4, timeout=TIMEOUT)
    assert again.accepted, again
    assert again.final.verify_with(certs["bob"])
    w.check_reply_to(again.final, again.request, "post/blob")
    assert again.final.extra.get("sha256") == extra["sha256"]
    st2 = os.stat(str(bob.mnt / "inbox" / sender.name / "twice.bin"))
    assert (st.st_ino, st.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns)
    assert bob.read_bytes("inbox/%s/twice.bin" % sender.name) == data
    assert wait_until(lambda: not tree_files(bob.state / "incoming"), 10)
    assert unnamed_bytes(bob) == 0


def test_forged_open_refused(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, w.new_key(), "open.bin", chunks,
                      extra, 8, timeout=TIMEOUT)
    assert out.reply is None or out.reply.status == "error", out
    assert not out.accepted
    out = post_stream(bob.addr, sender.name, sender.key, "open.bin", chunks,
                      extra, 8, open_extra={"id": "xyz",
                                            "recipients": "bob"},
                      timeout=TIMEOUT)
    assert out.reply.status == "error", out
    nothing_new(bob, before)


def test_open_over_another_nodes_tls_refused(net, sender, certs):
    """A stream open signed by the sender but sent over another node's TLS
    connection (a node that saw the request): refused, nothing stored, as
    what a stream stores may be resumed into the sender's file."""
    bob = net.nodes["bob"]
    wire_peer(net, "co-recipient", known_by=("bob",))
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    out = post_stream(bob.addr, sender.name, sender.key, "borrowed.bin",
                      chunks, extra, 4, no_trailer=True,
                      as_node=w.identity("co-recipient"), timeout=TIMEOUT)
    assert out.reply is not None and out.reply.status == "error", out
    assert "sender" in out.reply.extra.get("error", ""), out.reply.extra
    nothing_new(bob, before)


def test_bad_frame_refused(net, sender, certs):
    bob = net.nodes["bob"]
    before = snapshot(bob)
    data, key, blob_id, chunks, extra = blob(certs)
    # A short chunk among the streamed ones (only whole chunks stream).
    bad = list(chunks[:8])
    bad[3] = bad[3][:1000]
    out = post_stream(bob.addr, sender.name, sender.key, "frame.bin", chunks,
                      extra, 8, stream_chunks=bad, timeout=TIMEOUT)
    assert_refused(out, certs["bob"], allow_close=True)
    nothing_new(bob, before)
