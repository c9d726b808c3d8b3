"""Files served over HTTP on 127.0.0.1 for the download tests: Range requests honoured, and a connection that can be
cut part-way through once, as a dropped download is."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (path → bytes) on a free port until closed; records every request's path and Range header."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut_after: dict[str, int] = {}  # path → bytes sent before the next GET of it is cut (once)
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """The address of a served path."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        files = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read `requests`
                pass

            def do_GET(self):  # noqa: N802  (http.server's name)
                wanted = self.headers.get("Range")
                files.requests.append((self.path, wanted))
                body = files.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if match and files.honour_range:
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = files.cut_after.pop(self.path, None)
                self.wfile.write(body[start : start + cut] if cut is not None else body[start:])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        return Handler
