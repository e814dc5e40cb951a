package com.amazonaws.services.lambda.runtime;

import com.amazonaws.services.lambda.runtime.logging.LogLevel;

/** Writes to the function's log (the worker's standard output). */
public interface LambdaLogger {

    void log(String message);

    void log(byte[] message);

    /** Log at a level (aws-lambda-java-core 1.2.3+); Sprig's logger writes it like {@link #log(String)}. */
    default void log(String message, LogLevel logLevel) {
        log(message);
    }

    default void log(byte[] message, LogLevel logLevel) {
        log(message);
    }
}
