"""A small SMTP server on loopback, standing in for the mail provider outside the machine.

It speaks enough SMTP for Django's backend (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps every message
it accepted, and can be told to refuse (`reply = "550 ..."`, `"451 ..."`), or to take a message and hang
up before answering (`hang_up_after_data`), which leaves the sender not knowing whether it went out.
"""
from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Behaviour:
    reply_to_data: str = "250 OK queued"
    refuse_recipients: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 no such user"
    hang_up_after_data: bool = False


class SmtpSink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                sink._session(self)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mailers(self) -> dict:
        return {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                            "OPTIONS": {"host": "127.0.0.1", "port": self.port, "timeout": 5}}}

    def to(self, address: str) -> list[Received]:
        return [item for item in self.received if address in item.recipients]

    def _session(self, handler) -> None:
        def say(line: str) -> None:
            handler.wfile.write(line.encode() + b"\r\n")
            handler.wfile.flush()

        say("220 sink ESMTP")
        sender, recipients = "", []
        while True:
            line = handler.rfile.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                say("250-sink\r\n250 8BITMIME" if verb == "EHLO" else "250 sink")
            elif verb == "MAIL":
                sender, recipients = command.partition(":")[2].strip("<> "), []
                say("250 OK")
            elif verb == "RCPT":
                address = command.partition(":")[2].strip().strip("<>")
                refusal = self.behaviour.refuse_recipients.get(address)
                if refusal:
                    say(refusal)
                else:
                    recipients.append(address)
                    say("250 OK")
            elif verb == "DATA":
                say("354 go ahead")
                data = bytearray()
                while (chunk := handler.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                if self.behaviour.hang_up_after_data:
                    with self._lock:
                        self.received.append(Received(sender, recipients, bytes(data)))
                    return  # took it, never said so
                reply = self.behaviour.reply_to_data
                if reply.startswith("250"):
                    with self._lock:
                        self.received.append(Received(sender, recipients, bytes(data)))
                say(reply)
            elif verb == "RSET":
                sender, recipients = "", []
                say("250 OK")
            elif verb == "NOOP":
                say("250 OK")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 not implemented")
