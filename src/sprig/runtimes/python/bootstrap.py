# -*- coding: utf-8 -*-
"""Sprig's Python runtime: run one Lambda handler against the Lambda Runtime API.

Usage: ``python -u bootstrap.py [--handler=package.module.function]`` (else ``$_HANDLER``), with
``AWS_LAMBDA_RUNTIME_API=host:port`` and ``LAMBDA_TASK_ROOT`` (put on ``sys.path``).

Why our own instead of awslambdaric: it must start fast and fit in a 16 MB memory cgroup next to
the user's code, and run on every Python a device may have (2.7, 3.7 ... 3.13). So: stdlib only,
no heavy imports (no http.client/email, no logging unless the user imports it), one persistent
connection: Sprig's framed lane of the Runtime API on its Unix socket when Sprig offers it
(``SPRIG_RUNTIME_API_SOCKET`` and ``SPRIG_RUNTIME_API_FRAMES=1``: no HTTP on either side), else
keep-alive HTTP/1.1 (just enough of it), on that socket or on TCP.

Init errors go to ``/runtime/init/error`` with AWS's error types, then the process exits 1.
"""
from __future__ import absolute_import, division, print_function

import os
import sys
import time

import _socket as socket  # the C module: the Python wrapper pulls in enum/selectors

API = "/2018-06-01/runtime"
CT_JSON = "application/json"
CT_BINARY = "application/octet-stream"


def _make_codec():
    """``(loads, dumps)`` straight from the C accelerator ``_json``.

    ``import json`` pulls in ``re`` and ``enum``: some 5 ms of a cold start and about 1 MB in
    a 16 MB container, for two functions whose work ``_json`` does anyway. If ``_json`` is
    missing or behaves differently (checked once here), the ``json`` module is used.
    """
    try:
        import _json

        class Context(object):
            strict = True
            encoding = "utf-8"          # Python 2's scanner reads it
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                              "NaN": float("nan")}.__getitem__
            memo = None

        scan = _json.make_scanner(Context())
        make_encoder = _json.make_encoder
        escape = _json.encode_basestring_ascii
        space = " \t\n\r"

        def default(o):
            raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

        def dumps(o):
            return "".join(make_encoder({}, default, escape, None, ": ", ", ", False, False,
                                        True)(o, 0))

        def loads(s):
            i, n = 0, len(s)
            while i < n and s[i] in space:
                i += 1
            try:
                obj, end = scan(s, i)
            except Exception:
                # _json reports most errors through json.decoder's error class: on this (rare)
                # path let the json module parse it again and word the error.
                import json
                return json.loads(s)
            while end < n and s[end] in space:
                end += 1
            if end != n:
                raise ValueError("Extra data: char %d" % end)
            return obj

        probe = {"a": [1, 2.5, u"\u00e9", None, True, {"b": "c\"d"}]}
        text = u' {"a": [1, 2.5, "\\u00e9", null, true, {"b": "c\\"d"}]} '
        if loads(text) != probe or dumps(probe) != text.strip():
            raise ValueError("_json differs")
        return loads, dumps
    except Exception:
        import json
        return json.loads, json.dumps


_loads, _dumps = _make_codec()


class RuntimeApiError(Exception):
    pass


class Api(object):
    """A keep-alive HTTP/1.1 client for the one endpoint this worker talks to.

    Over ``SPRIG_RUNTIME_API_SOCKET`` (a Unix socket) when Sprig offers one, else over TCP to
    ``AWS_LAMBDA_RUNTIME_API``. An answer and the next ``/next`` are pipelined (one write).
    """

    def __init__(self, address, unix_path=None):
        host, _, port = address.rpartition(":")
        self.addr = None if unix_path else (host or "127.0.0.1", int(port))
        self.host = address or "localhost"
        self.unix_path = unix_path
        self.sock = None
        self.buf = b""

    def _connect(self):
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = self.unix_path
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = self.addr
        try:
            sock.connect(addr)
            if not self.unix_path:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception:
            sock.close()
            raise
        self.sock = sock
        self.buf = b""

    def encode(self, method, path, body=b"", headers=()):
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (
            method, path, self.host, len(body))
        for name, value in headers:
            head += "%s: %s\r\n" % (name, value)
        return (head + "\r\n").encode("utf-8") + body

    def send(self, data):
        if self.sock is None:
            self._connect()
        self.sock.sendall(data)

    def request(self, method, path, body=b"", headers=()):
        """Send one request and return (status, headers dict (lower-case names), body)."""
        data = self.encode(method, path, body, headers)
        for attempt in (0, 1):
            fresh = self.sock is None
            try:
                self.send(data)
                return self._read()
            except (OSError, IOError, RuntimeApiError):
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                if fresh or attempt:
                    raise
        raise RuntimeApiError("unreachable")

    def next(self):
        """The first invocation: (headers dict, body)."""
        status, headers, body = self.request("GET", API + "/invocation/next")
        return self._job(status, headers, body)

    def answer(self, request_id, path, out, ctype):
        """Post an invocation's answer (``path``: /response or /error); return the next job.
        Pipelined: the answer and the next /next leave in one write."""
        self.send(self.encode("POST", API + "/invocation/" + request_id + path, out,
                              [("Content-Type", ctype)])
                  + self.encode("GET", API + "/invocation/next"))
        status, _, reply = self._read()
        if status // 100 != 2:
            raise RuntimeApiError("POST %s answered %d: %s"
                                  % (path, status, reply.decode("utf-8", "replace")))
        return self._job(*self._read())

    def init_error(self, error_type, body):
        self.request("POST", API + "/init/error", body,
                     [("Lambda-Runtime-Function-Error-Type", error_type),
                      ("Content-Type", CT_JSON)])

    @staticmethod
    def _job(status, headers, body):
        if status != 200:
            raise RuntimeApiError("GET next answered %d: %r" % (status, body[:200]))
        return headers, body

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeApiError("the Runtime API closed the connection")
        self.buf += chunk

    def _read(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._recv()
        lines = self.buf[:end].decode("utf-8", "replace").split("\r\n")
        self.buf = self.buf[end + 4:]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        return status, headers, body


class Frames(object):
    """Sprig's framed lane of the Runtime API on its Unix socket (``sprig.runtime_api.frames``):
    the same calls as :class:`Api` without HTTP. A frame is a kind byte, the header's and the
    body's lengths (4 bytes each, big-endian), a JSON header, the body. The core answers
    nothing but jobs; it closes the connection on anything it refuses."""

    PREFACE = b"\x00sprig-frames/1\n"

    def __init__(self, unix_path):
        import _struct
        self.head = _struct.Struct(">cII")
        self.unix_path = unix_path
        self.sock = None
        self.buf = b""
        self.pending = self.PREFACE          # sent with the first frame

    def _send(self, kind, header, body=b""):
        head = _dumps(header).encode("utf-8")
        data = self.pending + self.head.pack(kind, len(head), len(body)) + head + body
        self.pending = b""
        if self.sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.unix_path)
            except Exception:
                sock.close()
                raise
            self.sock = sock
        self.sock.sendall(data)

    def _take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise RuntimeApiError("the Runtime API closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _job(self):
        kind, head_len, body_len = self.head.unpack(self._take(self.head.size))
        if kind != b"J":
            raise RuntimeApiError("unexpected frame %r" % kind)
        headers = _loads(self._take(head_len).decode("utf-8"))
        return headers, self._take(body_len)

    def next(self):
        self._send(b"N", {})
        return self._job()

    def answer(self, request_id, path, out, ctype):
        if path == "/response":
            self._send(b"R", {"id": request_id, "type": ctype}, out)
        else:
            self._send(b"E", {"id": request_id}, out)
        return self._job()

    def init_error(self, error_type, body):
        self._send(b"I", {"errorType": error_type}, body)


# -- the context object ------------------------------------------------------------------------

class CognitoIdentity(object):
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, doc):
        doc = doc or {}
        self.cognito_identity_id = doc.get("cognitoIdentityId")
        self.cognito_identity_pool_id = doc.get("cognitoIdentityPoolId")


class Client(object):
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, doc):
        self.installation_id = doc.get("installation_id")
        self.app_title = doc.get("app_title")
        self.app_version_name = doc.get("app_version_name")
        self.app_version_code = doc.get("app_version_code")
        self.app_package_name = doc.get("app_package_name")


class ClientContext(object):
    __slots__ = ("client", "custom", "env")

    def __init__(self, doc):
        self.custom = doc.get("custom")
        self.env = doc.get("env")
        client = doc.get("client")
        self.client = Client(client) if isinstance(client, dict) else None


class LambdaContext(object):
    """The ``context`` argument, with AWS's attribute names."""

    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
    log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")

    def __init__(self, request_id, deadline_ms, arn, client_context, identity):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.client_context = client_context
        self.identity = identity
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(msg if str(msg).endswith("\n") else str(msg) + "\n")
        sys.stdout.flush()


# -- handler loading ---------------------------------------------------------------------------

class InitFailure(Exception):
    def __init__(self, error_type, message, stack=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def load_handler(spec):
    """Import ``package.module.function``; raise InitFailure with AWS's error types."""
    import importlib
    if "." not in spec:
        raise InitFailure("Runtime.MalformedHandlerName",
                          "Bad handler '%s': not enough values to unpack (expected 2, got 1)"
                          % spec)
    modname, fname = spec.rsplit(".", 1)
    if not modname or not fname:
        raise InitFailure("Runtime.MalformedHandlerName", "Bad handler '%s'" % spec)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise InitFailure("Runtime.ImportModuleError",  # noqa: B904 (no "from": Python 2)
                          "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        stack = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, (e.text or "").strip())]
        raise InitFailure("Runtime.UserCodeSyntaxError",  # noqa: B904 (Python 2)
                          "Syntax error in module '%s': %s" % (modname, e), stack)
    handler = getattr(module, fname, None)
    if handler is None:
        raise InitFailure("Runtime.HandlerNotFound",
                          "Handler '%s' missing on module '%s'" % (fname, modname))
    return handler


def error_doc(exc_info, skip_frames=1):
    import traceback  # only when something failed: it drags in linecache and tokenize
    etype, value, tb = exc_info
    frames = traceback.extract_tb(tb)[skip_frames:]
    return {
        "errorMessage": str(value),
        "errorType": getattr(etype, "__name__", str(etype)),
        "stackTrace": traceback.format_list(frames),
    }


def log_error(doc):
    lines = ["[ERROR] %s: %s" % (doc["errorType"], doc["errorMessage"])]
    if doc.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in doc["stackTrace"])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


_logging_ready = []


def setup_logging():
    """Give the root logger a stdout handler, as AWS does, once the user's code uses logging
    (checked after init and after each invocation: importing logging ourselves costs memory)."""
    if _logging_ready or "logging" not in sys.modules:
        return
    _logging_ready.append(True)
    import logging
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(message)s", "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


# -- the loop ----------------------------------------------------------------------------------

def post_init_error(api, failure):
    body = _dumps({"errorMessage": failure.message, "errorType": failure.error_type,
                       "requestId": "", "stackTrace": failure.stack}).encode("utf-8")
    try:
        api.init_error(failure.error_type, body)
    except Exception:
        pass


def make_context(headers):
    cc = headers.get("lambda-runtime-client-context")
    client_context = None
    if cc:
        doc = _loads(cc)
        client_context = ClientContext(doc) if isinstance(doc, dict) else None
    ci = headers.get("lambda-runtime-cognito-identity")
    identity = CognitoIdentity(_loads(ci) if ci else None)
    return LambdaContext(headers.get("lambda-runtime-aws-request-id"),
                         int(headers.get("lambda-runtime-deadline-ms") or 0),
                         headers.get("lambda-runtime-invoked-function-arn", ""),
                         client_context, identity)


def serve(api, handler):
    headers, body = api.next()
    while True:
        request_id = headers["lambda-runtime-aws-request-id"]
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            context = make_context(headers)
            if headers.get("content-type") == CT_JSON:
                try:
                    event = _loads(body.decode("utf-8")) if body else None
                except ValueError as e:
                    raise MarshalError("Runtime.UnmarshalError",  # noqa: B904
                                       "Unable to unmarshal input: %s" % e)
            else:
                event = body
            result = handler(event, context)
            if isinstance(result, (bytes, bytearray)) and not isinstance(result, str):
                out, ctype = bytes(result), CT_BINARY
            else:
                try:
                    out, ctype = _dumps(result).encode("utf-8"), CT_JSON
                except (TypeError, ValueError) as e:
                    raise MarshalError("Runtime.MarshalError",  # noqa: B904
                                       "Unable to marshal response: %s" % e)
            path = "/response"
        except MarshalError as e:
            doc = {"errorMessage": e.message, "errorType": e.error_type, "stackTrace": []}
            log_error(doc)
            out, ctype, path = _dumps(doc).encode("utf-8"), CT_JSON, "/error"
        except Exception:
            doc = error_doc(sys.exc_info())
            log_error(doc)
            out, ctype, path = _dumps(doc).encode("utf-8"), CT_JSON, "/error"
        if not _logging_ready:
            setup_logging()
        headers, body = api.answer(request_id, path, out, ctype)


class MarshalError(Exception):
    def __init__(self, error_type, message):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message


def connect(address, unix_path):
    """Sprig's framed lane on its Unix socket when offered (``SPRIG_RUNTIME_API_FRAMES=1``),
    else HTTP: on that socket, or on TCP to ``AWS_LAMBDA_RUNTIME_API``."""
    if unix_path and os.environ.get("SPRIG_RUNTIME_API_FRAMES") == "1":
        return Frames(unix_path)
    return Api(address, unix_path)


def main(argv):
    handler_spec = os.environ.get("_HANDLER", "")
    for arg in argv[1:]:
        if arg.startswith("--handler="):
            handler_spec = arg[len("--handler="):]
    api = connect(os.environ.get("AWS_LAMBDA_RUNTIME_API", ""),
                  os.environ.get("SPRIG_RUNTIME_API_SOCKET") or None)
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root and task_root not in sys.path:
        sys.path.insert(0, task_root)
    try:
        handler = load_handler(handler_spec)
        setup_logging()
    except InitFailure as f:
        log_error({"errorType": f.error_type, "errorMessage": f.message,
                   "stackTrace": f.stack})
        post_init_error(api, f)
        return 1
    except Exception:
        doc = error_doc(sys.exc_info(), skip_frames=0)
        log_error(doc)
        post_init_error(api, InitFailure(doc["errorType"], doc["errorMessage"],
                                         doc["stackTrace"]))
        return 1
    try:
        serve(api, handler)
    except RuntimeApiError as e:
        sys.stderr.write("sprig python runtime: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.path[:1] = []           # do not let our own directory shadow the user's modules
    sys.exit(main(sys.argv))
