package io.sprig.runtime;

/**
 * A failure the runtime itself reports, with the Lambda error type to report it under
 * (Runtime.ImportModuleError, Runtime.HandlerNotFound, Runtime.UnmarshalError...).
 */
final class RuntimeFault extends Exception {
    private static final long serialVersionUID = 1L;

    static final String IMPORT_MODULE_ERROR = "Runtime.ImportModuleError";
    static final String HANDLER_NOT_FOUND = "Runtime.HandlerNotFound";
    static final String MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName";
    static final String UNMARSHAL_ERROR = "Runtime.UnmarshalError";
    static final String SERIALIZATION_ERROR = "Runtime.SerializationError";

    final String errorType;

    RuntimeFault(String errorType, String message) {
        super(message);
        this.errorType = errorType;
    }

    RuntimeFault(String errorType, String message, Throwable cause) {
        super(message, cause);
        this.errorType = errorType;
    }
}
