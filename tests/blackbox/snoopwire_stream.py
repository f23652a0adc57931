"""post/stream for the wire tests (the client side of
src/server/receive_stream.c): a signed stream open, chunk frames, the
trailer mark, the trailer (a signed post/blob request), the rest of the
chunks, the receipt. Kept beside snoopwire.py, which it uses."""

import socket
import time
import ssl
import struct

import snoopwire as w

STREAM_IDLE = 0xFFFFFFFFFFFFFFFD
STREAM_TRAILER = 0xFFFFFFFFFFFFFFFF
STREAM_ABORT = 0xFFFFFFFFFFFFFFFE


def marker(value):
    return w.frame_header(8) + struct.pack(">Q", value)


def post_stream(addr, node_id, key, path, chunks, extra, streamed,
                trailer_extra=None, trailer_key=None, trailer_path=None,
                trailer=None, stream_chunks=None, open_extra=None,
                no_trailer=False, abort=False, idle=0, as_node=None,
                timeout=30.0):
    """Streams CHUNKS[:STREAMED] (or STREAM_CHUNKS) after a post/stream
    open, then the trailer (TRAILER, a prebuilt request, or one built from
    TRAILER_EXTRA or EXTRA signed with TRAILER_KEY or KEY) and the rest of
    CHUNKS. NO_TRAILER: the connection ends after the streamed chunks;
    ABORT: the STREAM_ABORT mark follows them (the sender gave the blob up)
    and the connection ends. AS_NODE: the TLS identity (snoopwire.identity)
    instead of the signer's. Returns a snoopwire.BlobOutcome: reply is the answer to the
    open, final the one to the trailer; request is the trailer."""
    out = w.BlobOutcome()
    oextra = open_extra or {"id": extra["id"],
                            "recipients": extra["recipients"]}
    req = w.build("post/stream", path, node_id, key=key, extra=oextra)
    try:
        s = w.connect(addr, timeout, as_node=w._auto(req, as_node))
    except w.TLSRefused:
        out.dropped = True
        return out
    with s:
        try:
            w.send_frame(s, req.body)
            out.reply = w.parse(w.recv_frame(s))
        except (w.Dropped, BrokenPipeError, ConnectionResetError,
                ssl.SSLError):
            out.dropped = True
            return out
        except socket.timeout:
            out.timed_out = True
            return out
        if out.reply.status != "ok":
            return out
        out.stage = "chunks"
        first = stream_chunks if stream_chunks is not None \
            else chunks[:streamed]
        try:
            for i, c in enumerate(first):
                s.sendall(w.chunk_frame(i, c))
                for _ in range(idle):
                    s.sendall(marker(STREAM_IDLE))
            if abort:
                s.sendall(marker(STREAM_ABORT))
                time.sleep(0.5)
            if no_trailer or abort:
                return out
            if trailer is None:
                trailer = w.build("post/blob", trailer_path or path, node_id,
                                  key=trailer_key or key,
                                  extra=trailer_extra or extra)
            out.request = trailer
            s.sendall(marker(STREAM_TRAILER))
            w.send_frame(s, trailer.body)
            for i in range(len(first), len(chunks)):
                s.sendall(w.chunk_frame(i, chunks[i]))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            out.dropped = True
        try:
            out.final = w.parse(w.recv_frame(s))
            if out.final.status == "ok":
                out.stage = "receipt"
        except (w.Dropped, ConnectionResetError, ssl.SSLError):
            out.dropped = True
        except socket.timeout:
            out.timed_out = True
    return out
