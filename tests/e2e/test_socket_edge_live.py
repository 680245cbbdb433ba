"""The websocket edge against a real daphne: frames the server refuses end with a close frame
that says why (1009 too big, 1007 not UTF-8), not a dropped connection; hostile JSON gets an
answer."""

import base64
import contextlib
import os
import socket
import struct

import pytest

from tests.chat.test_consumers import start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class RawSocket:
    """A websocket client that can send what a browser never would."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101"), response
        self.buffer = response.split(b"\r\n\r\n", 1)[1]

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        size = len(payload)
        if size < 126:
            head += bytes([0x80 | size])
        elif size < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        # The server may close before it read everything: the close frame says why.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(head + mask + masked)

    def read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def next_frame(self) -> tuple[int, bytes]:
        first, second = self.read(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.read(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.read(8))[0]
        return first & 0x0F, self.read(size)

    def close_code(self) -> int:
        while True:
            opcode, payload = self.next_frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])


@pytest.fixture
def chat_path(daphne_process, l1_setup):
    from chat.selectors import make_visitor_token

    chat = start()
    return daphne_process.port, f"/ws/chat/{chat.pk}/?token={make_visitor_token(chat)}"


def test_a_frame_over_the_servers_limit_is_closed_with_1009(chat_path):
    port, path = chat_path
    raw = RawSocket(port, path)
    raw.send_frame(0x1, b'{"type": "message", "text": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert raw.close_code() == 1009


def test_text_that_is_not_utf8_is_closed_with_1007(chat_path):
    port, path = chat_path
    raw = RawSocket(port, path)
    raw.send_frame(0x1, b'{"type": "message", "text": "\xff\xfe"}')
    assert raw.close_code() == 1007


def test_deep_nesting_gets_bad_json_from_a_real_server(chat_path):
    port, path = chat_path
    raw = RawSocket(port, path)
    raw.send_frame(0x1, b"[" * 16_000 + b"]" * 16_000)
    frames = []
    while not any(b"bad_json" in payload for payload in frames):
        opcode, payload = raw.next_frame()
        assert opcode == 0x1, "the socket must stay open"
        frames.append(payload)
    raw.send_frame(0x1, b'{"type": "ping"}')
    while True:
        opcode, payload = raw.next_frame()
        if b'"pong"' in payload:
            break
