package io.sprig.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The {@link Context} of one invocation: request headers from /next, the rest from the
 * AWS_LAMBDA_FUNCTION_* and AWS_LAMBDA_LOG_* environment variables.
 */
final class SprigContext implements Context {

    private static final LambdaLogger LOGGER = new StdoutLogger(System.out);

    private final String requestId;
    private final String functionArn;
    private final long deadlineMs;
    private final ClientContext clientContext;
    private final CognitoIdentity identity;
    private final String traceId;

    SprigContext(String requestId, String functionArn, long deadlineMs, String clientContextJson,
                 String identityJson, String traceId) {
        this.requestId = requestId;
        this.traceId = traceId;
        this.functionArn = functionArn == null ? "" : functionArn;
        this.deadlineMs = deadlineMs;
        this.clientContext = clientContextJson == null || clientContextJson.isEmpty()
                ? null : new SprigClientContext(asMap(Json.parse(clientContextJson)));
        this.identity = identityJson == null || identityJson.isEmpty()
                ? null : new SprigIdentity(asMap(Json.parse(identityJson)));
    }

    private static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null ? fallback : v;
    }

    static Map<?, ?> asMap(Object v) {
        return v instanceof Map ? (Map<?, ?>) v : Collections.emptyMap();
    }

    static String str(Object v) {
        return v == null ? null : v instanceof String ? (String) v : Json.write(v);
    }

    @Override
    public String getAwsRequestId() {
        return requestId;
    }

    @Override
    public String getLogGroupName() {
        return env("AWS_LAMBDA_LOG_GROUP_NAME", "");
    }

    @Override
    public String getLogStreamName() {
        return env("AWS_LAMBDA_LOG_STREAM_NAME", "");
    }

    @Override
    public String getFunctionName() {
        return env("AWS_LAMBDA_FUNCTION_NAME", "");
    }

    @Override
    public String getFunctionVersion() {
        return env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    }

    @Override
    public String getInvokedFunctionArn() {
        return functionArn;
    }

    @Override
    public CognitoIdentity getIdentity() {
        return identity;
    }

    @Override
    public ClientContext getClientContext() {
        return clientContext;
    }

    @Override
    public int getRemainingTimeInMillis() {
        if (deadlineMs <= 0) {
            return 0;
        }
        long left = deadlineMs - System.currentTimeMillis();
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, left));
    }

    @Override
    public int getMemoryLimitInMB() {
        try {
            return Integer.parseInt(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0").trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    @Override
    public LambdaLogger getLogger() {
        return LOGGER;
    }

    @Override
    public String getXrayTraceId() {
        return traceId;
    }

    /** Logs to standard output, one message per line, as the function's log. */
    static final class StdoutLogger implements LambdaLogger {
        private final PrintStream out;

        StdoutLogger(PrintStream out) {
            this.out = out;
        }

        @Override
        public void log(String message) {
            synchronized (out) {
                out.print(message);
                if (!message.endsWith("\n")) {
                    out.println();
                }
                out.flush();
            }
        }

        @Override
        public void log(byte[] message) {
            log(new String(message, StandardCharsets.UTF_8));
        }
    }

    static final class SprigClientContext implements ClientContext {
        private final Client client;
        private final Map<String, String> custom;
        private final Map<String, String> environment;

        SprigClientContext(Map<?, ?> doc) {
            this.client = doc.get("client") instanceof Map ? new SprigClient(asMap(doc.get("client"))) : null;
            this.custom = strings(doc.get("custom")); // mutable, as AWS documents it
            this.environment = Collections.unmodifiableMap(strings(doc.get("env")));
        }

        private static Map<String, String> strings(Object v) {
            Map<String, String> out = new LinkedHashMap<String, String>();
            for (Map.Entry<?, ?> e : asMap(v).entrySet()) {
                out.put(String.valueOf(e.getKey()), str(e.getValue()));
            }
            return out;
        }

        @Override
        public Client getClient() {
            return client;
        }

        @Override
        public Map<String, String> getCustom() {
            return custom;
        }

        @Override
        public Map<String, String> getEnvironment() {
            return environment;
        }
    }

    static final class SprigClient implements Client {
        private final Map<?, ?> doc;

        SprigClient(Map<?, ?> doc) {
            this.doc = doc;
        }

        @Override
        public String getInstallationId() {
            return str(doc.get("installation_id"));
        }

        @Override
        public String getAppTitle() {
            return str(doc.get("app_title"));
        }

        @Override
        public String getAppVersionName() {
            return str(doc.get("app_version_name"));
        }

        @Override
        public String getAppVersionCode() {
            return str(doc.get("app_version_code"));
        }

        @Override
        public String getAppPackageName() {
            return str(doc.get("app_package_name"));
        }
    }

    static final class SprigIdentity implements CognitoIdentity {
        private final Map<?, ?> doc;

        SprigIdentity(Map<?, ?> doc) {
            this.doc = doc;
        }

        @Override
        public String getIdentityId() {
            return str(doc.get("cognitoIdentityId"));
        }

        @Override
        public String getIdentityPoolId() {
            return str(doc.get("cognitoIdentityPoolId"));
        }
    }
}
