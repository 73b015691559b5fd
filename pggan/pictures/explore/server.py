"""pggan-explore's HTTP side: the standard library's threading HTTP server, strict parameters, the static page.

Why no web framework: the page needs a handful of GET endpoints, static files and careful error handling, which
``http.server`` does in a few hundred lines with no dependency to install, audit or keep up with; the work is
in the generator, not the routing.

**Endpoints** (also in the README; every parameter is checked, unknown ones refused, errors are a 4xx status
with a one-line ``text/plain`` body — 400 bad parameter, 403 foreign Host, 404 unknown path or checkpoint, 405
not GET/HEAD, 414 URL too long, 503 an export already running — and the server keeps serving):

- ``GET /`` (also ``/index.html``, ``/app.js``, ``/style.css``): the page, from the installed package.
- ``GET /api/info``: JSON — resolution, alpha, channels, latent size, checkpoints (id, file, kimg), directions
  (name, kind, SeFa eigenvalue), request limits, cache figures.
- ``GET /image.png?seed=S[&direction=NAME&strength=X]…[&checkpoint=K][&size=PX]``: the face of seed S, bitwise
  the PNG ``pggan-sample --seeds S`` writes (with one direction: its one-column ``--direction --strengths X``
  grid); several direction/strength pairs add up; ``size`` box-filters down to at most PX pixels.
- ``GET /morph.png?seeds=A,B[,C…]&frames=N[&frame=K][&checkpoint=K][&size=PX]``: frame K of N along great
  circles through those faces (first frame A, last frame the last seed); without ``frame``, all N in one row.
- ``GET /morph.mp4?seeds=A,B[,C…][&seconds=4][&fps=30][&loop=1][&checkpoint=K]``: the morph video of
  ``pggan-sample --keyframe-seeds A,B,… --video`` (same function, same frames), as a download.

**Safety**: it binds 127.0.0.1 unless told otherwise and then answers only requests whose ``Host`` is a loopback
name (a web page elsewhere cannot reach it by DNS rebinding); ``--host 0.0.0.0`` serves anyone on the network,
with a warning. The page is served with a Content-Security-Policy allowing only its own origin, so nothing is ever
fetched from the internet.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import math
import re
import select
import signal
import socket
import sys
import traceback
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pggan import __version__
from pggan.errors import UserError
from pggan.pictures.explore.faces import (
    MAX_EDITS,
    MAX_MORPH_SEEDS,
    Dropped,
    ExploreError,
    Explorer,
    NotFound,
    download_name,
)
from pggan.pictures.latents import parse_seeds

#: Longer request targets are refused (414): the longest real one, 16 edits, is well under 1 KB.
MAX_URL = 4096
#: Query fields in one request: the 16 edits' 32 plus a few.
MAX_FIELDS = 2 * MAX_EDITS + 8
#: The page's files, served from the package (``package_data`` in setup.py).
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: Only this origin: scripts, styles, images (and the blob: URLs the page makes of them), fetches.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "media-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_INT = re.compile(r"\d{1,10}")
_FLOAT = re.compile(r"[+-]?(\d{1,6}(\.\d{0,8})?|\.\d{1,8})")


class TooLong(ExploreError):
    """A request target longer than :data:`MAX_URL`: 414."""

    status = 414


def static_file(name: str) -> bytes:
    """A file of the page, read from the installed package (so a wheel or an sdist carries it)."""
    return importlib.resources.files(__package__).joinpath(name).read_bytes()


class Query:
    """A request's query string, checked: known names only, single values unless a name may repeat."""

    def __init__(self, text: str, allowed: set[str], repeated: frozenset[str] = frozenset()) -> None:
        try:
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise ExploreError("the query is not valid UTF-8") from None
        except ValueError:
            raise ExploreError(f"too many query parameters (at most {MAX_FIELDS})") from None
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            if name not in allowed:
                raise ExploreError(f"unknown parameter {name!r} (this endpoint takes {', '.join(sorted(allowed))})")
            self.values.setdefault(name, []).append(value)
        for name, values in self.values.items():
            if len(values) > 1 and name not in repeated:
                raise ExploreError(f"{name} is given {len(values)} times; give it once")

    def text(self, name: str) -> str | None:
        values = self.values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        text = self.text(name)
        if text is None:
            return default
        if not _INT.fullmatch(text) or not low <= int(text) <= high:
            raise ExploreError(f"{name} must be a whole number from {low} to {high}, got {text[:40]!r}")
        return int(text)

    def number(self, name: str, text: str | None = None) -> float | None:
        text = self.text(name) if text is None else text
        if text is None:
            return None
        if not _FLOAT.fullmatch(text.strip()):
            raise ExploreError(f"{name} must be a plain number like 1.5 or -2, got {text[:40]!r}")
        return float(text)


def seed_parameter(query: Query) -> int:
    text = query.text("seed")
    if text is None:
        raise ExploreError("seed is missing: /image.png?seed=S")
    return query.integer("seed", 0, 2**32 - 1) or 0


def edits_parameter(query: Query) -> list[tuple[str, float]]:
    names, strengths = query.all("direction"), query.all("strength")
    if len(names) != len(strengths):
        raise ExploreError(f"{len(names)} direction(s) but {len(strengths)} strength(s): give them in pairs")
    if len(names) > MAX_EDITS:
        raise ExploreError(f"{len(names)} directions at once; at most {MAX_EDITS}")
    return [(name, query.number("strength", text) or 0.0) for name, text in zip(names, strengths, strict=True)]


def seeds_parameter(query: Query) -> list[int]:
    text = query.text("seeds")
    if text is None:
        raise ExploreError("seeds is missing, e.g. seeds=12,873")
    if text.count(",") >= MAX_MORPH_SEEDS or len(text) > 12 * MAX_MORPH_SEEDS:
        raise ExploreError(f"a morph goes through at most {MAX_MORPH_SEEDS} faces")
    spans = [re.fullmatch(r"\s*(\d{1,10})\s*-\s*(\d{1,10})\s*", token) for token in text.split(",")]
    if sum(int(m.group(2)) - int(m.group(1)) + 1 for m in spans if m) > MAX_MORPH_SEEDS:  # before expanding
        raise ExploreError(f"a morph goes through at most {MAX_MORPH_SEEDS} faces")
    try:
        seeds = parse_seeds(text, "seeds")
    except UserError as exc:
        raise ExploreError(str(exc)) from None
    if len(seeds) > MAX_MORPH_SEEDS:
        raise ExploreError(f"a morph goes through at most {MAX_MORPH_SEEDS} faces, got {len(seeds)}")
    return seeds


def host_is_loopback(host_header: str | None) -> bool:
    """True for ``localhost``, ``127.x.x.x`` and ``[::1]`` (with any port); True when no Host was sent."""
    if not host_header:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_gone(connection: socket.socket) -> bool:
    """True once the client has closed its end (the page aborted the request): its socket reads as at EOF."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class ExploreServer(ThreadingHTTPServer):
    """One thread per connection, all sharing one :class:`Explorer` (and so one generator per checkpoint)."""

    daemon_threads = True  # a keep-alive connection left open never holds up Ctrl-C

    def __init__(
        self, address: tuple[str, int], explorer: Explorer, *, verbose: bool = False, loopback_only: bool = True
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.explorer = explorer
        self.verbose = verbose
        self.loopback_only = loopback_only
        self.pages = {name: static_file(name) for name, _ in STATIC.values()}
        super().__init__(address, ExploreHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal for a page that cancels requests: no traceback for it."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class ExploreHandler(BaseHTTPRequestHandler):
    """Routes GET/HEAD requests; every failure becomes a one-line plain-text status, never a traceback."""

    server: ExploreServer
    server_version = f"pggan-explore/{__version__}"
    protocol_version = "HTTP/1.1"  # keep-alive: the page's many small images reuse a few connections
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms wait for a delayed ACK
    timeout = 120  # an idle keep-alive connection's thread ends after this many seconds

    # ------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def send_body(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors, also the base class's own (bad request line, 414, 501), as one plain-text line."""
        text = (message or self.responses.get(code, ("error",))[0]).splitlines()[0][:300]
        if code >= 500 or code in (414, 431):
            self.close_connection = True
        try:
            headers = {"Cache-Control": "no-store", **({"Allow": "GET, HEAD"} if code == 405 else {})}
            self.send_body(code, (text + "\n").encode("utf-8", "replace"), "text/plain; charset=utf-8", headers)
        except OSError:
            self.close_connection = True

    def still_wanted(self) -> bool:
        return not client_gone(self.connection)

    # ------------------------------------------------------------ methods
    def do_GET(self) -> None:
        self.serve()

    def do_HEAD(self) -> None:
        self.serve()

    def refuse_method(self) -> None:
        self.send_error(405, f"{self.command} is not served here: every endpoint is GET (or HEAD)")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse_method

    def serve(self) -> None:
        try:
            if len(self.path) > MAX_URL:
                raise TooLong(f"the request is {len(self.path)} characters long; at most {MAX_URL}")
            if self.server.loopback_only and not host_is_loopback(self.headers.get("Host")):
                self.send_error(403, "this server answers only to localhost (start it with --host to serve others)")
                return
            parts = urlsplit(self.path)
            route = self.routes().get(parts.path)
            if route is None:
                raise NotFound(f"no such page: {parts.path[:80]} (see /api/info and the README)")
            route(parts.query)
        except Dropped:
            self.close_connection = True  # the client left; nothing to answer
        except ExploreError as exc:
            self.send_error(exc.status, str(exc))
        except UserError as exc:
            self.send_error(400, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug: the console gets the traceback, the client one line, the server lives
            traceback.print_exc(file=sys.stderr)
            self.send_error(500, f"internal error ({type(exc).__name__}); the server's console has the details")

    def routes(self) -> dict[str, Callable[[str], None]]:
        routes: dict[str, Callable[[str], None]] = {path: self.page for path in STATIC}
        routes.update({
            "/api/info": self.api_info, "/image.png": self.image, "/morph.png": self.morph,
            "/morph.mp4": self.morph_video, "/favicon.ico": self.favicon,
        })  # fmt: skip
        return routes

    # ------------------------------------------------------------ endpoints
    def page(self, query: str) -> None:
        name, content_type = STATIC[urlsplit(self.path).path]
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        self.send_body(200, self.server.pages[name], content_type, headers)

    def favicon(self, query: str) -> None:
        self.send_body(204, b"", "image/x-icon")

    def api_info(self, query: str) -> None:
        Query(query, set())
        body = json.dumps(self.server.explorer.info(), indent=1).encode()
        self.send_body(200, body, "application/json", {"Cache-Control": "no-store"})

    def send_png(self, data: bytes, filename: str) -> None:
        headers = {"Cache-Control": "private, max-age=600", "Content-Disposition": f'inline; filename="{filename}"'}
        self.send_body(200, data, "image/png", headers)

    def image(self, query: str) -> None:
        q = Query(query, {"seed", "direction", "strength", "checkpoint", "size"}, frozenset({"direction", "strength"}))
        seed, edits = seed_parameter(q), edits_parameter(q)
        size = q.integer("size", 1, 4096)
        data = self.server.explorer.face_png(seed, edits, q.text("checkpoint"), size, self.still_wanted)
        self.send_png(data, download_name(seed, any(strength != 0 for _, strength in edits)))

    def morph(self, query: str) -> None:
        q = Query(query, {"seeds", "frames", "frame", "checkpoint", "size"})
        seeds = seeds_parameter(q)
        if q.text("frames") is None:
            raise ExploreError("frames is missing, e.g. frames=8")
        frames = q.integer("frames", 0, 10**9) or 0
        frame = q.integer("frame", 0, 10**9)
        size = q.integer("size", 1, 4096)
        data = self.server.explorer.morph_png(seeds, frames, frame, q.text("checkpoint"), size, self.still_wanted)
        label = "-".join(map(str, seeds)) + (f"-{frame:03d}" if frame is not None else "")
        self.send_png(data, f"morph-{label}.png")

    def morph_video(self, query: str) -> None:
        q = Query(query, {"seeds", "seconds", "fps", "loop", "checkpoint"})
        seeds = seeds_parameter(q)
        seconds = q.number("seconds")
        if seconds is not None and not math.isfinite(seconds):
            raise ExploreError("seconds must be a finite number")
        fps = q.integer("fps", 0, 10**6, default=30) or 0
        loop = q.integer("loop", 0, 1, default=1)
        data = self.server.explorer.morph_mp4(
            seeds, 4.0 if seconds is None else seconds, fps, bool(loop), q.text("checkpoint"), self.still_wanted
        )
        name = f"morph-{'-'.join(map(str, seeds))}.mp4"
        self.send_body(200, data, "video/mp4", {"Content-Disposition": f'attachment; filename="{name}"',
                                                "Cache-Control": "no-store"})  # fmt: skip


def address_text(host: str, port: int) -> str:
    """The URL to print: a wildcard host as this machine's name, IPv6 in brackets."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def is_loopback_host(host: str) -> bool:
    return host_is_loopback(f"[{host}]" if ":" in host else host)


def can_open_browser() -> bool:
    """A graphical browser can be opened here: not over SSH without a display, where ``webbrowser`` would start
    a text browser inside the terminal the server is using."""
    import os

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_explore(
    source: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    directions: tuple[str, ...] = (),
    raw: bool = False,
    sefa: int = 5,
    cache_mb: float = 256,
    open_browser: bool = False,
    verbose: bool = False,
) -> None:
    """``pggan-explore``: load, listen, print the address, serve in the foreground until Ctrl-C (or SIGTERM)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {port}")
    if not host.strip():
        raise UserError("--host must name an address, e.g. 127.0.0.1 or 0.0.0.0")

    def warn(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    explorer = Explorer(source, device=device, raw=raw, directions=directions, sefa_sliders=sefa,
                        cache_mb=cache_mb, warn=warn)  # fmt: skip
    loopback = is_loopback_host(host)
    try:
        server = ExploreServer((host, port), explorer, verbose=verbose, loopback_only=loopback)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    except OverflowError:
        raise UserError(f"--port must be from 0 to 65535, got {port}") from None
    url = address_text(host, server.server_address[1])
    print(f"pggan-explore: {explorer.describe()}", flush=True)
    print(f"pggan-explore: serving on {url}  (Ctrl-C stops)", flush=True)
    if not loopback:
        warn(
            f"warning: listening on {host}: anyone who can reach this machine on port {server.server_address[1]} "
            "can use this page and its GPU/CPU; there is no login. Prefer the default 127.0.0.1 with an SSH tunnel."
        )
    if open_browser and can_open_browser():
        webbrowser.open(address_text("127.0.0.1" if not loopback else host, server.server_address[1]))

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop) if _main_thread() else None
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        print("pggan-explore: stopped", flush=True)
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
