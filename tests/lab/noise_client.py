#!/usr/bin/python3
"""tests/lab/noise_client.py - a third-party client of natbroker's sealed
control channel, written only from the wire description (no project code):
Debian's python3-dissononce does Noise_IK_25519_ChaChaPoly_SHA256.

    noise_client.py --broker IP[:PORT] [--key-hex HEX] [--broker-key KEY]
                    [--timeout S] [--wait-replies N] JSON...

Asks the broker for its key (0xD5, padded to 64 bytes -> 0xD6 || key) unless
--broker-key pins one, shakes hands (our static key: --key-hex, 32 bytes of
private key in hex, else a fresh random one), sends each JSON message sealed
(a missing "tx" gets a random one) and prints every sealed reply it opens as
one line on stdout, until it has N replies (default: one per message) or the
timeout. Its own public key and the broker's go to stderr as
"noise_client: our key K" / "noise_client: broker key K". Exit 0 when every
reply came, 1 otherwise (timeout, handshake refused, a frame that does not
open).

Frames (one UDP datagram each; indices big-endian):
    0xD5 || 63 zero bytes           "what is your key?"  -> 0xD6 || key (32)
    0xD1 | sender u32 | msg1        Noise IK initiation (prologue
                                    b"natbroker v2 broker")
    0xD2 | sender u32 | receiver u32 | msg2
    0xD3 | receiver u32 | counter u64 BE | ChaCha20-Poly1305(ct || tag)
          AD = the 13 header bytes, nonce = Noise's n = counter
          (4 zero bytes || counter, 64-bit little-endian)
    0xD4 | receiver u32             the broker's hint "unknown session"

As a module: BrokerChannel(sock, (ip, port)).fetch_key(); .handshake();
.send(dict or bytes); .recv(timeout) -> bytes or None.
"""
import argparse
import base64
import json
import os
import select
import socket
import struct
import sys
import time

from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.x25519.private import PrivateKey
from dissononce.dh.x25519.public import PublicKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.sha256 import SHA256Hash
from dissononce.processing.handshakepatterns.interactive.IK import IKHandshakePattern
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState

PROLOGUE = b"natbroker v2 broker"
T_INIT, T_RESP, T_SEAL, T_HINT, T_KEYQ, T_KEYR = 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6
HDR = 13


def key_text(raw):
    """32 bytes -> 43 base64url characters, no padding (natpeer key)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_raw(text):
    raw = base64.urlsafe_b64decode(text + "=")
    if len(text) != 43 or len(raw) != 32:
        raise ValueError("a key is 43 base64url characters")
    return raw


class ChannelError(Exception):
    pass


class BrokerChannel:
    def __init__(self, sock, broker, priv=None, broker_key=None):
        self.sock = sock
        self.broker = broker
        self.kp = X25519DH().generate_keypair(PrivateKey(priv) if priv else None)
        self.broker_key = broker_key
        self.local_index = self.remote_index = None
        self.send_cs = self.recv_cs = None
        self.tx_counter = 0
        self.seen = set()

    @property
    def public(self):
        return self.kp.public.data

    def _recv_from_broker(self, deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            data, src = self.sock.recvfrom(2048)
            if src == self.broker and data:
                return data

    def fetch_key(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.sendto(bytes([T_KEYQ]) + bytes(63), self.broker)
            d = self._recv_from_broker(min(deadline, time.monotonic() + 0.5))
            if d and d[0] == T_KEYR and len(d) == 33:
                self.broker_key = d[1:]
                return self.broker_key
        raise ChannelError("no key from the broker (0xD5)")

    def handshake(self, timeout=3.0):
        if self.broker_key is None:
            raise ChannelError("no broker key")
        hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), SHA256Hash()), X25519DH())
        hs.initialize(IKHandshakePattern(), True, PROLOGUE, s=self.kp, rs=PublicKey(self.broker_key))
        msg1 = bytearray()
        hs.write_message(b"", msg1)
        self.local_index = struct.unpack(">I", os.urandom(4))[0]
        init = bytes([T_INIT]) + struct.pack(">I", self.local_index) + bytes(msg1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.sendto(init, self.broker)  # a retransmission: the same bytes
            d = self._recv_from_broker(min(deadline, time.monotonic() + 0.5))
            if not d or d[0] != T_RESP or len(d) < 9 + 48:
                continue
            sender, receiver = struct.unpack(">II", d[1:9])
            if receiver != self.local_index:
                continue
            pl = bytearray()
            cs = hs.read_message(d[9:], pl)
            if cs is None:
                raise ChannelError("the handshake did not complete")
            self.send_cs, self.recv_cs = cs  # initiator sends with the first
            self.remote_index = sender
            return
        raise ChannelError("no handshake response from the broker (0xD2)")

    def seal(self, pt):
        hdr = bytes([T_SEAL]) + struct.pack(">IQ", self.remote_index, self.tx_counter)
        self.send_cs.set_nonce(self.tx_counter)
        self.tx_counter += 1
        return hdr + self.send_cs.encrypt_with_ad(hdr, pt)

    def open(self, frame):
        """Plaintext of a 0xD3 frame to us, or None (not ours, replayed, bad tag)."""
        if len(frame) < HDR + 16 or frame[0] != T_SEAL:
            return None
        index, counter = struct.unpack(">IQ", frame[1:HDR])
        if index != self.local_index or counter in self.seen:
            return None
        self.recv_cs.set_nonce(counter)
        try:
            pt = self.recv_cs.decrypt_with_ad(frame[:HDR], frame[HDR:])
        except Exception:  # dissononce raises the cipher's InvalidTag
            return None
        self.seen.add(counter)
        return pt

    def send(self, msg):
        if isinstance(msg, dict):
            msg = json.dumps(msg, separators=(",", ":")).encode()
        self.sock.sendto(self.seal(msg), self.broker)

    def recv(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            d = self._recv_from_broker(deadline)
            if d is None:
                return None
            if d[0] == T_HINT:
                raise ChannelError("the broker does not know our session (0xD4)")
            pt = self.open(d)
            if pt is not None:
                return pt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="IP[:PORT] (port 3478 by default)")
    ap.add_argument("--key-hex", help="our static private key, 64 hex digits (default: random)")
    ap.add_argument("--broker-key", help="the broker's public key (default: ask it, 0xD5)")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--wait-replies", type=int, default=None)
    ap.add_argument("messages", nargs="*", help="JSON control messages to send sealed")
    a = ap.parse_args()
    host, _, port = a.broker.partition(":")
    broker = (host, int(port or 3478))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    ch = BrokerChannel(sock, broker, bytes.fromhex(a.key_hex) if a.key_hex else None,
                       key_raw(a.broker_key) if a.broker_key else None)
    try:
        if ch.broker_key is None:
            ch.fetch_key(a.timeout)
        print("noise_client: our key %s" % key_text(ch.public), file=sys.stderr)
        print("noise_client: broker key %s" % key_text(ch.broker_key), file=sys.stderr)
        ch.handshake(a.timeout)
        for m in a.messages:
            obj = json.loads(m)
            obj.setdefault("tx", os.urandom(8).hex())
            ch.send(obj)
        want = len(a.messages) if a.wait_replies is None else a.wait_replies
        got = 0
        deadline = time.monotonic() + a.timeout
        while got < want:
            pt = ch.recv(max(0.0, deadline - time.monotonic()))
            if pt is None:
                break
            print(pt.decode("utf-8", "replace"), flush=True)
            got += 1
    except ChannelError as e:
        print("noise_client: %s" % e, file=sys.stderr)
        return 1
    if got < want:
        print("noise_client: %d of %d replies before the timeout" % (got, want), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
