"""The lab's apt proxy: `python -m picl.lab.aptproxy CONFIG`.

Lab nodes have no uplink. A board reaches its Debian mirror through its own; a lab node reaches
this machine's, through this proxy, the way a site with an apt proxy does it
(`Acquire::http::Proxy` on every node). It listens on the lab's own address, inside the lab's
network namespace, and fetches from this machine's network, but only the mirror's URLs: any
other destination, any method but GET and HEAD, and CONNECT (tunnels) are refused. Redirects are
passed back to apt, never followed here, so they cannot lead the proxy anywhere else either.

apt checks every file against the mirror's signed indices, so the proxy needs no trust: it only
relays. Packages (`/pool/...`, immutable by name) are kept in a cache shared by every lab, so a
package fetched once installs on every node from here.

CONFIG is a JSON file: {"namespace": PATH, "address": IP, "port": N, "mirrors": {PREFIX:
UPSTREAM}, "cache": DIR, "log": FILE}. Only the standard library: it runs as long as the lab.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CLONE_NEWNET = 0x40000000
CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 60.0
# Request headers apt sends that matter to the mirror (conditional and partial fetches).
FORWARDED = ("If-Modified-Since", "If-None-Match", "If-Range", "Range", "Cache-Control")
# Response headers apt uses; hop-by-hop ones (Connection, Transfer-Encoding) are ours to set.
RELAYED = (
    "Content-Type",
    "Last-Modified",
    "ETag",
    "Content-Range",
    "Accept-Ranges",
    "Location",
    "Date",
)


def upstream_url(url: str, mirrors: dict[str, str]) -> str | None:
    """The mirror URL a proxy request for `url` is fetched from; None if it is not the mirror's.

    `mirrors` maps what nodes ask for (`http://deb.debian.org/debian`) to where it is fetched
    (the same, or the https one this machine uses). Only paths below a mirror's, without `..`,
    query or fragment, are the mirror's.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.query or parts.fragment or parts.username or parts.password:
        return None
    seen = urllib.parse.unquote(parts.path)  # the path as the mirror reads it (apt escapes +)
    if any(seg in (".", "..") for seg in seen.split("/")) or "\\" in seen or "\0" in seen:
        return None
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port not in (None, 80) else ""
    for prefix, upstream in mirrors.items():
        base = prefix.rstrip("/")
        path = urllib.parse.urlsplit(base).path
        # Below the mirror's path both as asked and as read: an escaped prefix is refused.
        if f"http://{host}{port}{seen}".startswith(base + "/") and parts.path.startswith(
            path + "/"
        ):
            return upstream.rstrip("/") + parts.path[len(path) :]
    return None


def cache_path(cache: Path, upstream: str) -> Path | None:
    """Where a package file is cached; None for what is not cached (indices change in place)."""
    parts = urllib.parse.urlsplit(upstream)
    if "/pool/" not in parts.path or not parts.path.endswith((".deb", ".udeb")):
        return None
    return cache / parts.hostname / parts.path.lstrip("/")  # type: ignore[operator]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: apt pipelines its requests on one connection
    server_version = "picl-lab-aptproxy"
    mirrors: dict[str, str] = {}
    cache: Path = Path("/nonexistent")

    def do_GET(self) -> None:
        self._relay(body=True)

    def do_HEAD(self) -> None:
        self._relay(body=False)

    def _refuse(self, status: int, why: str) -> None:
        self.log_message("refused %s %s: %s", self.command, self.path, why)
        text = f"picl lab apt proxy: {why}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)

    def do_CONNECT(self) -> None:
        self._refuse(403, "no tunnels: only the Debian mirror, over http")

    def _relay(self, body: bool) -> None:
        upstream = upstream_url(self.path, self.mirrors)
        if upstream is None:
            allowed = ", ".join(self.mirrors)
            self._refuse(403, f"{self.path} is not on this lab's mirror ({allowed})")
            return
        cached = cache_path(self.cache, upstream)
        if cached is not None and cached.is_file():
            self._send_file(cached, body)
            return
        try:
            self._fetch(upstream, cached if "Range" not in self.headers else None, body)
        except (OSError, http.client.HTTPException) as exc:
            self._refuse(502, f"{upstream}: {exc}")

    def _send_file(self, path: Path, body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.debian.binary-package")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                shutil.copyfileobj(f, self.wfile, CHUNK)

    def _fetch(self, upstream: str, cached: Path | None, body: bool) -> None:
        parts = urllib.parse.urlsplit(upstream)
        secure = parts.scheme == "https"
        kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
        conn = kind(parts.netloc, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {h: self.headers[h] for h in FORWARDED if self.headers[h]}
            conn.request(self.command, parts.path, headers=headers)
            reply = conn.getresponse()
            self.send_response(reply.status, reply.reason)
            for name in RELAYED:
                if reply.getheader(name):
                    self.send_header(name, reply.getheader(name))  # type: ignore[arg-type]
            length = reply.getheader("Content-Length")
            chunked = length is None and body and reply.status not in (204, 304)
            if length is not None:
                self.send_header("Content-Length", length)
            elif chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", "0")
            self.end_headers()
            if not body or reply.status in (204, 304):
                return
            keep = cached if reply.status == 200 and length is not None else None
            self._stream(reply, keep, chunked, int(length) if length else None)
        finally:
            conn.close()

    def _stream(
        self, reply: http.client.HTTPResponse, keep: Path | None, chunked: bool, length: int | None
    ) -> None:
        """Send the mirror's body on to apt, keeping a whole package file in the cache."""
        scratch = None
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            scratch = keep.with_name(f".{keep.name}.{os.getpid()}.{threading.get_ident()}")
        received = 0
        try:
            with open(scratch, "wb") if scratch else open(os.devnull, "wb") as copy:
                while data := reply.read(CHUNK):
                    received += len(data)
                    copy.write(data)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            if scratch and received == length:
                scratch.replace(keep)  # type: ignore[arg-type]
        finally:
            if scratch:
                scratch.unlink(missing_ok=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {format % args}\n")


def listen_in(namespace: str, address: str, port: int) -> socket.socket:
    """A listening socket in another network namespace; this thread comes back to its own.

    A socket stays in the namespace it was made in, so the proxy serves the lab's network and
    fetches from this machine's with one process and no forwarder between the two.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as own, open(namespace) as lab:
        if libc.setns(lab.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
        finally:
            if libc.setns(own.fileno(), CLONE_NEWNET) != 0:
                os._exit(1)  # never serve from the lab's network: it has no way out
    return sock


def serve(config: dict, sock: socket.socket) -> None:
    """Serve apt's requests on `sock` until SIGTERM."""
    Handler.mirrors = dict(config["mirrors"])
    Handler.cache = Path(config["cache"])
    server = ThreadingHTTPServer((config["address"], config["port"]), Handler, False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"serving {config['address']}:{config['port']} for {', '.join(Handler.mirrors)}")
    sys.stdout.flush()
    server.serve_forever()


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    # Listen before detaching: once this first process exits 0, the proxy answers.
    sock = listen_in(config["namespace"], config["address"], config["port"])
    log = open(config["log"], "a")  # noqa: SIM115 (it is the daemon's stdout to the end)
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    os.chdir("/")
    serve(config, sock)


if __name__ == "__main__":
    main()
