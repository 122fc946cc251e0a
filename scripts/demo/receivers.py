"""Where the demo catches finance's alerts, so nothing leaves the machine: an SMTP server (the
``finance_smtp`` connection) and an HTTP endpoint (``finance_webhook``), both on 127.0.0.1.

Standard library only (asyncio streams for SMTP, ``http.server`` for the webhook): the demo must run on
a fresh clone with the runtime requirements alone. The SMTP side speaks just what ``smtplib`` sends for an
alert (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) and checks the login, so a wrong password in the
connection fails the demo the way it would fail against a real server.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class CapturedMail:
    """One message as the server accepted it: envelope plus the parsed RFC 5322 message."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class MailCatcher:
    """An SMTP server in a background thread that keeps every message it accepts in ``mails``."""

    login: str
    password: str
    mails: list[CapturedMail] = field(default_factory=list)
    port: int = 0

    def start(self) -> MailCatcher:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, limit=2**22)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=self._loop.run_forever, name="demo-smtp", daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        if not ready.wait(10):
            raise RuntimeError("the demo SMTP receiver did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 demo-smtp ready")
        sender, recipients, authenticated = "", [], False
        try:
            while line := (await reader.readline()).decode(errors="replace").rstrip("\r\n"):
                command, _, argument = line.partition(" ")
                command = command.upper()
                if command in ("EHLO", "HELO"):
                    writer.write(b"250-demo-smtp\r\n250 AUTH PLAIN\r\n")
                elif command == "AUTH":
                    blob = argument.partition(" ")[2]
                    if not blob:
                        say("334 ")
                        await writer.drain()
                        blob = (await reader.readline()).decode().strip()
                    parts = base64.b64decode(blob).decode().split("\x00")
                    authenticated = parts[1:] == [self.login, self.password]
                    say("235 2.7.0 accepted" if authenticated else "535 5.7.8 bad credentials")
                elif command == "MAIL" and not authenticated:
                    say("530 5.7.0 authenticate first")
                elif command == "MAIL":
                    sender, recipients = _address(argument), []
                    say("250 ok")
                elif command == "RCPT":
                    recipients.append(_address(argument))
                    say("250 ok")
                elif command == "DATA":
                    say("354 go ahead")
                    await writer.drain()
                    raw = await reader.readuntil(b"\r\n.\r\n")
                    lines = raw[: -len(b"\r\n.\r\n")].split(b"\r\n")  # undo dot-stuffing (RFC 5321 4.5.2)
                    body = b"\n".join(line[1:] if line.startswith(b".") else line for line in lines) + b"\n"
                    parsed = email.message_from_bytes(body, policy=email.policy.default)
                    self.mails.append(CapturedMail(sender, recipients, parsed))  # type: ignore[arg-type]
                    say("250 queued")
                elif command == "QUIT":
                    say("221 bye")
                    break
                else:
                    say("250 ok")
                await writer.drain()
        finally:
            await writer.drain()
            writer.close()


def _address(argument: str) -> str:
    """``FROM:<a@b> SIZE=1`` -> ``a@b``."""
    return argument.partition(":")[2].strip().split(" ")[0].strip("<>")


@dataclass
class WebhookCatcher:
    """An HTTP server that records every POSTed JSON body with its path and Authorization header."""

    posts: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> WebhookCatcher:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                posts.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                              "json": json.loads(self.rfile.read(length) or b"null")})  # fmt: skip
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep the demo's output readable
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
