package io.sprig.runtime;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ProtocolFamily;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The Runtime API (2018-06-01) over one keep-alive HTTP/1.1 connection, JDK only.
 *
 * <p>Why not HttpURLConnection: Sprig also serves the session on a Unix socket
 * ({@code SPRIG_RUNTIME_API_SOCKET}), several times cheaper per round trip than loopback TCP,
 * and only a socket-level client can use it (via {@code UnixDomainSocketAddress}, Java 16+, found
 * by reflection so the jar still targets Java 8; older JVMs use TCP). The Runtime API needs
 * little HTTP: Content-Length bodies (chunked is read too), keep-alive, one request at a time.
 */
final class RuntimeApiClient {

    /** One invocation handed out by /next. */
    static final class Invocation {
        final String requestId;
        final byte[] payload;
        final boolean json;
        final SprigContext context;

        Invocation(String requestId, byte[] payload, boolean json, SprigContext context) {
            this.requestId = requestId;
            this.payload = payload;
            this.json = json;
            this.context = context;
        }
    }

    /** /next answered something the runtime cannot work with: it must exit. */
    static final class FatalApiError extends IOException {
        private static final long serialVersionUID = 1L;

        FatalApiError(String message) {
            super(message);
        }
    }

    private static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            return headers.get(name.toLowerCase(java.util.Locale.ROOT));
        }
    }

    private static final String PREFIX = "/2018-06-01/runtime";

    private final String host;
    private final int port;
    private final String unixPath;
    private final boolean binaryEncoding;
    private Closeable connection;
    private InputStream in;
    private OutputStream out;

    RuntimeApiClient(String endpoint, String unixPath, boolean binaryEncoding) {
        this.unixPath = unixPath == null || unixPath.isEmpty() ? null : unixPath;
        if (this.unixPath != null && (endpoint == null || endpoint.isEmpty())) {
            this.host = "localhost";
            this.port = 0;
        } else if (endpoint == null || !endpoint.matches("[^:/\\[\\]]+:\\d+|\\[[^\\]]+\\]:\\d+")) {
            throw new IllegalArgumentException(
                    "AWS_LAMBDA_RUNTIME_API must be host:port (got " + endpoint + ")");
        } else {
            int colon = endpoint.lastIndexOf(':');
            this.host = endpoint.substring(0, colon).replace("[", "").replace("]", "");
            this.port = Integer.parseInt(endpoint.substring(colon + 1));
        }
        this.binaryEncoding = binaryEncoding;
    }

    // ---- Connection --------------------------------------------------------------------------

    private void connect() throws IOException {
        if (unixPath != null) {
            SocketChannel channel = openUnix(unixPath);
            if (channel != null) {
                connection = channel;
                in = new BufferedInputStream(Channels.newInputStream(channel), 65536);
                out = new BufferedOutputStream(Channels.newOutputStream(channel), 65536);
                return;
            }
        }
        Socket socket = new Socket();
        try {
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port), 5000);
        } catch (IOException e) {
            socket.close();
            throw e;
        }
        connection = socket;
        in = new BufferedInputStream(socket.getInputStream(), 65536);
        out = new BufferedOutputStream(socket.getOutputStream(), 65536);
    }

    /** A connected Unix-socket channel, or null on a JVM without Unix sockets (before 16). */
    private static SocketChannel openUnix(String path) throws IOException {
        Object address;
        ProtocolFamily unix;
        java.lang.reflect.Method open;
        try {
            Class<?> cls = Class.forName("java.net.UnixDomainSocketAddress");
            address = cls.getMethod("of", String.class).invoke(null, path);
            unix = StandardProtocolFamily.valueOf("UNIX");
            open = SocketChannel.class.getMethod("open", ProtocolFamily.class);
        } catch (ReflectiveOperationException | IllegalArgumentException e) {
            return null;
        }
        SocketChannel channel;
        try {
            channel = (SocketChannel) open.invoke(null, unix);
        } catch (ReflectiveOperationException e) {
            return null;
        }
        try {
            channel.connect((SocketAddress) address);
        } catch (IOException e) {
            channel.close();
            throw new IOException("Cannot connect to the Runtime API socket " + path + ": " + e, e);
        }
        return channel;
    }

    private void disconnect() {
        if (connection != null) {
            try {
                connection.close();
            } catch (IOException ignored) {
                // closing a broken connection: nothing more to do
            }
        }
        connection = null;
        in = null;
        out = null;
    }

    // ---- HTTP --------------------------------------------------------------------------------

    private Response request(String method, String path, byte[] body, String... headers)
            throws IOException {
        for (int attempt = 0; ; attempt++) {
            boolean fresh = connection == null;
            try {
                if (fresh) {
                    connect();
                }
                send(method, path, body, headers);
                return receive();
            } catch (IOException e) {
                disconnect();
                // A reused keep-alive connection may have been closed by the server meanwhile.
                if (fresh || attempt > 0) {
                    throw e;
                }
            }
        }
    }

    private void send(String method, String path, byte[] body, String... headers) throws IOException {
        StringBuilder head = new StringBuilder(256);
        head.append(method).append(' ').append(PREFIX).append(path).append(" HTTP/1.1\r\n")
            .append("Host: ").append(host).append(':').append(port).append("\r\n")
            .append("User-Agent: sprig-java-runtime\r\n");
        if (body != null) {
            head.append("Content-Length: ").append(body.length).append("\r\n");
        }
        for (int i = 0; i + 1 < headers.length; i += 2) {
            if (headers[i + 1] != null) {
                head.append(headers[i]).append(": ").append(headers[i + 1]).append("\r\n");
            }
        }
        head.append("\r\n");
        out.write(head.toString().getBytes(StandardCharsets.UTF_8));
        if (body != null) {
            out.write(body);
        }
        out.flush();
    }

    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(128);
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                byte[] b = line.toByteArray();
                int n = b.length > 0 && b[b.length - 1] == '\r' ? b.length - 1 : b.length;
                return new String(b, 0, n, StandardCharsets.UTF_8);
            }
            line.write(c);
        }
        throw new IOException("The Runtime API closed the connection");
    }

    private byte[] readExactly(int n) throws IOException {
        byte[] buf = new byte[n];
        int off = 0;
        while (off < n) {
            int r = in.read(buf, off, n - off);
            if (r < 0) {
                throw new IOException("The Runtime API closed the connection mid-body");
            }
            off += r;
        }
        return buf;
    }

    private Response receive() throws IOException {
        String status = readLine();
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/")) {
            throw new IOException("Bad HTTP status line from the Runtime API: " + status);
        }
        int code;
        try {
            code = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
            throw new IOException("Bad HTTP status line from the Runtime API: " + status);
        }
        Map<String, String> headers = new HashMap<String, String>();
        for (String line = readLine(); !line.isEmpty(); line = readLine()) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                headers.put(line.substring(0, colon).trim().toLowerCase(java.util.Locale.ROOT),
                        line.substring(colon + 1).trim());
            }
        }
        byte[] body;
        String length = headers.get("content-length");
        boolean close = "close".equalsIgnoreCase(headers.get("connection"));
        if (headers.containsKey("transfer-encoding")
                && headers.get("transfer-encoding").toLowerCase(java.util.Locale.ROOT).contains("chunked")) {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            while (true) {
                String size = readLine();
                int semi = size.indexOf(';');
                int n = Integer.parseInt((semi >= 0 ? size.substring(0, semi) : size).trim(), 16);
                if (n == 0) {
                    while (!readLine().isEmpty()) {
                        // trailers: ignored
                    }
                    break;
                }
                all.write(readExactly(n));
                readLine();
            }
            body = all.toByteArray();
        } else if (length != null) {
            body = readExactly(Integer.parseInt(length.trim()));
        } else {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            byte[] buf = new byte[16384];
            int r;
            while ((r = in.read(buf)) > 0) {
                all.write(buf, 0, r);
            }
            body = all.toByteArray();
            close = true;
        }
        if (close) {
            disconnect();
        }
        return new Response(code, headers, body);
    }

    // ---- Runtime API -------------------------------------------------------------------------

    Invocation next() throws IOException {
        Response r = request("GET", "/invocation/next", null);
        if (r.status != 200) {
            throw new FatalApiError("Runtime API answered " + r.status + " to GET next: "
                    + new String(r.body, StandardCharsets.UTF_8));
        }
        String id = r.header("Lambda-Runtime-Aws-Request-Id");
        if (id == null || id.isEmpty()) {
            throw new FatalApiError("Runtime API sent no Lambda-Runtime-Aws-Request-Id");
        }
        long deadline;
        try {
            String d = r.header("Lambda-Runtime-Deadline-Ms");
            deadline = d == null ? 0 : Long.parseLong(d.trim());
        } catch (NumberFormatException e) {
            deadline = 0;
        }
        String trace = r.header("Lambda-Runtime-Trace-Id");
        if (trace != null) {
            System.setProperty("com.amazonaws.xray.traceHeader", trace);
        } else {
            System.clearProperty("com.amazonaws.xray.traceHeader");
        }
        String type = r.header("Content-Type");
        String mediaType = type == null ? "application/json" : type.split(";")[0].trim();
        boolean json = !binaryEncoding && mediaType.equalsIgnoreCase("application/json");
        SprigContext context = new SprigContext(id, r.header("Lambda-Runtime-Invoked-Function-Arn"),
                deadline, r.header("Lambda-Runtime-Client-Context"),
                r.header("Lambda-Runtime-Cognito-Identity"), trace);
        return new Invocation(id, r.body, json, context);
    }

    void respond(String requestId, byte[] body, String contentType) throws IOException {
        post("/invocation/" + requestId + "/response", body, contentType, null);
    }

    void error(String requestId, Map<String, Object> doc) throws IOException {
        post("/invocation/" + requestId + "/error", Json.write(doc).getBytes(StandardCharsets.UTF_8),
                "application/json", (String) doc.get("errorType"));
    }

    void initError(Map<String, Object> doc) throws IOException {
        post("/init/error", Json.write(doc).getBytes(StandardCharsets.UTF_8), "application/json",
                (String) doc.get("errorType"));
    }

    private void post(String path, byte[] body, String contentType, String errorType) throws IOException {
        Response r = request("POST", path, body, "Content-Type", contentType,
                "Lambda-Runtime-Function-Error-Type", errorType);
        if (r.status < 200 || r.status > 299) {
            // The server has recorded the failure (e.g. 413 for an oversize response) for the
            // caller; the runtime carries on with the next invocation.
            System.err.println("Runtime API answered " + r.status + " to POST " + path + ": "
                    + new String(r.body, StandardCharsets.UTF_8));
        }
    }
}
