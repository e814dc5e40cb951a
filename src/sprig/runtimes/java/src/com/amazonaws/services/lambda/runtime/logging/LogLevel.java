package com.amazonaws.services.lambda.runtime.logging;

/** Log levels of {@code LambdaLogger.log(message, level)}, as in aws-lambda-java-core 1.2.3+. */
public enum LogLevel {
    /** What the plain {@code log(String)} uses: never filtered. */
    UNDEFINED,
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR,
    FATAL;

    /** The level named {@code name} (any case). */
    public static LogLevel fromString(String name) {
        for (LogLevel level : values()) {
            if (level != UNDEFINED && level.name().equalsIgnoreCase(name == null ? "" : name.trim())) {
                return level;
            }
        }
        throw new IllegalArgumentException("Invalid log level: '" + name
                + "' expected one of [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]");
    }
}
