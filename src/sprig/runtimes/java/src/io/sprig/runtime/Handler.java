package io.sprig.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * A loaded handler: {@code package.Class::method} or {@code package.Class} (then handleRequest of
 * RequestHandler or RequestStreamHandler), and how to call it.
 *
 * <p>Method shapes, in the order AWS's Java runtime prefers them: (InputStream, OutputStream,
 * Context), (InputStream, OutputStream), (I, Context), (I), (). Instance methods are called on one
 * instance made at init (so fields keep state between invocations, as on AWS).
 */
final class Handler {

    private static final Pattern NAME = Pattern.compile(
            "[\\p{L}_$][\\p{L}\\p{N}_$]*(\\.[\\p{L}_$][\\p{L}\\p{N}_$]*)*(::[\\p{L}_$][\\p{L}\\p{N}_$]*)?");

    private enum Shape { STREAM_CONTEXT, STREAM, VALUE_CONTEXT, VALUE, NONE }

    /** What a handler produced: the bytes to post and their content type. */
    static final class Result {
        final byte[] body;
        final String contentType;

        Result(byte[] body, String contentType) {
            this.body = body;
            this.contentType = contentType;
        }
    }

    private final Object target;
    private final Method method;
    private final Shape shape;
    private final Type inputType;

    private Handler(Object target, Method method, Shape shape, Type inputType) {
        this.target = target;
        this.method = method;
        this.shape = shape;
        this.inputType = inputType;
    }

    static Handler load(String handler, ClassLoader loader) throws Throwable {
        if (handler == null || handler.isEmpty() || !NAME.matcher(handler).matches()) {
            throw new RuntimeFault(RuntimeFault.MALFORMED_HANDLER_NAME, "Bad handler " + handler
                    + ": expected package.Class::method or package.Class");
        }
        int sep = handler.indexOf("::");
        String className = sep < 0 ? handler : handler.substring(0, sep);
        String methodName = sep < 0 ? null : handler.substring(sep + 2);
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw new RuntimeFault(RuntimeFault.IMPORT_MODULE_ERROR, "Class not found: " + className, e);
        } catch (ExceptionInInitializerError e) {
            throw e.getCause() != null ? e.getCause() : e;
        } catch (LinkageError e) {
            throw new RuntimeFault(RuntimeFault.IMPORT_MODULE_ERROR,
                    "Could not load class " + className + ": " + e, e);
        }
        if (methodName == null) {
            if (RequestStreamHandler.class.isAssignableFrom(cls) || RequestHandler.class.isAssignableFrom(cls)) {
                methodName = "handleRequest";
            } else {
                throw new RuntimeFault(RuntimeFault.HANDLER_NOT_FOUND, "Class " + className
                        + " does not implement RequestHandler or RequestStreamHandler;"
                        + " name a method as " + className + "::method");
            }
        }
        Method best = null;
        Shape bestShape = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(methodName) || m.isBridge()) {
                continue;
            }
            Shape s = shapeOf(m.getParameterTypes());
            if (s != null && (best == null || s.ordinal() < bestShape.ordinal()
                    || (s == bestShape && best.getParameterTypes().length > 0
                        && best.getParameterTypes()[0] == Object.class))) {
                best = m;
                bestShape = s;
            }
        }
        if (best == null) {
            throw new RuntimeFault(RuntimeFault.HANDLER_NOT_FOUND, "No public method named "
                    + methodName + " with an appropriate signature found on class " + className
                    + " (expected (InputStream, OutputStream, Context), (I, Context), (I) or ())");
        }
        Object target = null;
        if (!Modifier.isStatic(best.getModifiers())) {
            try {
                target = cls.getConstructor().newInstance();
            } catch (NoSuchMethodException e) {
                throw new RuntimeFault(RuntimeFault.HANDLER_NOT_FOUND, "Class " + className
                        + " needs a public no-argument constructor for its instance method "
                        + methodName, e);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }
        best.setAccessible(true);
        Type input = bestShape == Shape.VALUE || bestShape == Shape.VALUE_CONTEXT
                ? best.getGenericParameterTypes()[0] : null;
        return new Handler(target, best, bestShape, input);
    }

    private static Shape shapeOf(Class<?>[] p) {
        if (p.length == 3 && p[0] == InputStream.class && p[1] == OutputStream.class && p[2] == Context.class) {
            return Shape.STREAM_CONTEXT;
        }
        if (p.length == 2 && p[0] == InputStream.class && p[1] == OutputStream.class) {
            return Shape.STREAM;
        }
        if (p.length == 2 && p[1] == Context.class) {
            return Shape.VALUE_CONTEXT;
        }
        if (p.length == 1) {
            return Shape.VALUE;
        }
        if (p.length == 0) {
            return Shape.NONE;
        }
        return null;
    }

    /** Run the handler; exceptions thrown by the user's code propagate unwrapped. */
    Result invoke(byte[] payload, boolean json, Context context) throws Throwable {
        Object[] args;
        ByteArrayOutputStream out = null;
        switch (shape) {
            case STREAM_CONTEXT:
            case STREAM:
                out = new ByteArrayOutputStream();
                InputStream in = new ByteArrayInputStream(payload);
                args = shape == Shape.STREAM ? new Object[] {in, out} : new Object[] {in, out, context};
                break;
            case NONE:
                args = new Object[0];
                break;
            default:
                Object input;
                if (inputType == InputStream.class) {
                    input = new ByteArrayInputStream(payload);
                } else if (inputType == Context.class) {
                    input = context;
                } else {
                    try {
                        input = Convert.event(payload, json, inputType);
                    } catch (Convert.ConversionException e) {
                        throw new RuntimeFault(RuntimeFault.UNMARSHAL_ERROR, e.getMessage(), e);
                    }
                }
                args = shape == Shape.VALUE ? new Object[] {input} : new Object[] {input, context};
        }
        Object result;
        try {
            result = method.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
        if (out != null) {
            return new Result(out.toByteArray(), "application/octet-stream");
        }
        if (result instanceof byte[]) {
            return new Result((byte[]) result, "application/octet-stream");
        }
        String text;
        try {
            text = Json.write(result);
        } catch (IllegalArgumentException e) {
            throw new RuntimeFault(RuntimeFault.SERIALIZATION_ERROR, e.getMessage(), e);
        }
        return new Result(text.getBytes(StandardCharsets.UTF_8), "application/json");
    }
}
