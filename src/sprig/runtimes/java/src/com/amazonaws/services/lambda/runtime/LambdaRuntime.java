package com.amazonaws.services.lambda.runtime;

import java.nio.charset.StandardCharsets;

/** The process-wide logger, for code that has no Context at hand. */
public final class LambdaRuntime {

    private static final LambdaLogger LOGGER = new LambdaLogger() {
        @Override
        public void log(String message) {
            synchronized (System.out) {
                System.out.print(message);
                System.out.flush();
            }
        }

        @Override
        public void log(byte[] message) {
            log(new String(message, StandardCharsets.UTF_8));
        }
    };

    private LambdaRuntime() {
    }

    public static LambdaLogger getLogger() {
        return LOGGER;
    }
}
