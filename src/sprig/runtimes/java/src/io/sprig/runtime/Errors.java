package io.sprig.runtime;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The error document AWS's Java runtime posts: errorMessage, errorType, stackTrace (one string per
 * frame) and, when there is one, the cause in the same shape.
 */
final class Errors {

    private Errors() {
    }

    static String typeOf(Throwable t) {
        return t instanceof RuntimeFault ? ((RuntimeFault) t).errorType : t.getClass().getName();
    }

    static Map<String, Object> document(Throwable t) {
        return document(t, 0);
    }

    private static Map<String, Object> document(Throwable t, int depth) {
        Map<String, Object> doc = new LinkedHashMap<String, Object>();
        doc.put("errorMessage", t.getMessage() == null ? "" : t.getMessage());
        doc.put("errorType", typeOf(t));
        List<String> frames = new ArrayList<String>();
        for (StackTraceElement e : t.getStackTrace()) {
            frames.add(e.toString());
        }
        doc.put("stackTrace", frames);
        Throwable cause = t.getCause();
        if (cause != null && cause != t && depth < 10) {
            doc.put("cause", document(cause, depth + 1));
        }
        return doc;
    }
}
