package io.sprig.runtime;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The Runtime API (2018-06-01) over HttpURLConnection: JDK only, and the JDK keeps the one
 * connection alive between calls as long as every body is read to the end.
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

    private final String base;
    private final boolean binaryEncoding;

    RuntimeApiClient(String endpoint, boolean binaryEncoding) {
        if (endpoint == null || !endpoint.matches("[^:/]+:\\d+|\\[[^\\]]+\\]:\\d+")) {
            throw new IllegalArgumentException(
                    "AWS_LAMBDA_RUNTIME_API must be host:port (got " + endpoint + ")");
        }
        this.base = "http://" + endpoint + "/2018-06-01/runtime";
        this.binaryEncoding = binaryEncoding;
    }

    private HttpURLConnection open(String path, String method) throws IOException {
        HttpURLConnection c = (HttpURLConnection) new URL(base + path).openConnection(Proxy.NO_PROXY);
        c.setRequestMethod(method);
        c.setConnectTimeout(5000);
        c.setReadTimeout(0); // /next waits as long as it takes for work to arrive
        c.setUseCaches(false);
        c.setRequestProperty("User-Agent", "sprig-java-runtime");
        return c;
    }

    static byte[] readAll(InputStream in) throws IOException {
        if (in == null) {
            return new byte[0];
        }
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[16384];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    Invocation next() throws IOException {
        HttpURLConnection c = open("/invocation/next", "GET");
        int status = c.getResponseCode();
        byte[] body = readAll(status >= 400 ? c.getErrorStream() : c.getInputStream());
        if (status != 200) {
            throw new FatalApiError("Runtime API answered " + status + " to GET next: "
                    + new String(body, StandardCharsets.UTF_8));
        }
        String id = c.getHeaderField("Lambda-Runtime-Aws-Request-Id");
        if (id == null || id.isEmpty()) {
            throw new FatalApiError("Runtime API sent no Lambda-Runtime-Aws-Request-Id");
        }
        long deadline = 0;
        try {
            String d = c.getHeaderField("Lambda-Runtime-Deadline-Ms");
            deadline = d == null ? 0 : Long.parseLong(d.trim());
        } catch (NumberFormatException e) {
            deadline = 0;
        }
        String trace = c.getHeaderField("Lambda-Runtime-Trace-Id");
        if (trace != null) {
            System.setProperty("com.amazonaws.xray.traceHeader", trace);
        } else {
            System.clearProperty("com.amazonaws.xray.traceHeader");
        }
        String type = c.getHeaderField("Content-Type");
        String mediaType = type == null ? "application/json" : type.split(";")[0].trim();
        boolean json = !binaryEncoding && mediaType.equalsIgnoreCase("application/json");
        SprigContext context = new SprigContext(id, c.getHeaderField("Lambda-Runtime-Invoked-Function-Arn"),
                deadline, c.getHeaderField("Lambda-Runtime-Client-Context"),
                c.getHeaderField("Lambda-Runtime-Cognito-Identity"), trace);
        return new Invocation(id, body, json, context);
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
        HttpURLConnection c = open(path, "POST");
        c.setDoOutput(true);
        c.setFixedLengthStreamingMode(body.length);
        c.setRequestProperty("Content-Type", contentType);
        if (errorType != null) {
            c.setRequestProperty("Lambda-Runtime-Function-Error-Type", errorType);
        }
        OutputStream out = c.getOutputStream();
        try {
            out.write(body);
        } finally {
            out.close();
        }
        int status = c.getResponseCode();
        byte[] answer = readAll(status >= 400 ? c.getErrorStream() : c.getInputStream());
        if (status < 200 || status > 299) {
            // The server has recorded the failure (e.g. 413 for an oversize response) for the
            // caller; the runtime carries on with the next invocation.
            System.err.println("Runtime API answered " + status + " to POST " + path + ": "
                    + new String(answer, StandardCharsets.UTF_8));
        }
    }
}
