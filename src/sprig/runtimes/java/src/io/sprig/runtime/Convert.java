package io.sprig.runtime;

import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns an event into the handler's declared input type.
 *
 * <p>Supported: byte[] and InputStream (raw bytes), String, Object/Map/List/Collection/Set,
 * boxed and primitive numbers and booleans, enums, arrays, and POJOs with a no-argument
 * constructor whose public fields or setters are filled from a JSON object (recursively, honouring
 * generic element types such as {@code List<Item>}).
 */
final class Convert {

    private Convert() {
    }

    /** Thrown when the event does not fit the input type (reported as Runtime.UnmarshalError). */
    static final class ConversionException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ConversionException(String message) {
            super(message);
        }
    }

    /** Convert the raw event to {@code type}; {@code json} says whether the bytes are JSON. */
    static Object event(byte[] payload, boolean json, Type type) {
        Class<?> raw = rawClass(type);
        if (raw == byte[].class) {
            return payload;
        }
        String text = new String(payload, StandardCharsets.UTF_8);
        if (raw == String.class) {
            if (!json) {
                return text;
            }
            // A JSON string event gives its value; any other JSON event gives its text.
            try {
                Object parsed = Json.parse(text);
                return parsed instanceof String ? parsed : text;
            } catch (IllegalArgumentException e) {
                return text;
            }
        }
        if (!json && raw == Object.class) {
            return payload;
        }
        Object parsed;
        try {
            parsed = text.trim().isEmpty() ? null : Json.parse(text);
        } catch (IllegalArgumentException e) {
            throw new ConversionException("Could not parse the event as JSON: " + e.getMessage());
        }
        return value(parsed, type, "event");
    }

    static Class<?> rawClass(Type type) {
        if (type instanceof Class) {
            return (Class<?>) type;
        }
        if (type instanceof ParameterizedType) {
            return rawClass(((ParameterizedType) type).getRawType());
        }
        if (type instanceof GenericArrayType) {
            Class<?> component = rawClass(((GenericArrayType) type).getGenericComponentType());
            return java.lang.reflect.Array.newInstance(component, 0).getClass();
        }
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return upper.length > 0 ? rawClass(upper[0]) : Object.class;
        }
        if (type instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) type).getBounds();
            return bounds.length > 0 ? rawClass(bounds[0]) : Object.class;
        }
        return Object.class;
    }

    private static Type typeArg(Type type, int index) {
        if (type instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) type).getActualTypeArguments();
            if (index < args.length) {
                return args[index];
            }
        }
        return Object.class;
    }

    private static ConversionException mismatch(String where, Object value, String expected) {
        String got = value == null ? "null" : value.getClass().getSimpleName();
        return new ConversionException("Cannot convert " + where + " (a JSON " + got + ") to "
                + expected);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    static Object value(Object v, Type type, String where) {
        Class<?> raw = rawClass(type);
        if (raw == Object.class) {
            return v;
        }
        if (v == null) {
            if (raw.isPrimitive()) {
                throw mismatch(where, null, raw.getName());
            }
            return null;
        }
        if (raw == String.class) {
            return v instanceof String ? v : Json.write(v);
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (v instanceof Boolean) {
                return v;
            }
            throw mismatch(where, v, "boolean");
        }
        if (raw.isPrimitive() || Number.class.isAssignableFrom(raw)) {
            if (!(v instanceof Number)) {
                throw mismatch(where, v, raw.getSimpleName());
            }
            return number((Number) v, raw, where);
        }
        if (raw == char.class || raw == Character.class) {
            if (v instanceof String && ((String) v).length() == 1) {
                return ((String) v).charAt(0);
            }
            throw mismatch(where, v, "char");
        }
        if (raw.isEnum()) {
            if (v instanceof String) {
                try {
                    return Enum.valueOf((Class<? extends Enum>) raw, (String) v);
                } catch (IllegalArgumentException e) {
                    throw new ConversionException(where + ": " + v + " is not a constant of "
                            + raw.getName());
                }
            }
            throw mismatch(where, v, raw.getName());
        }
        if (Map.class.isAssignableFrom(raw)) {
            if (!(v instanceof Map)) {
                throw mismatch(where, v, "a Map");
            }
            Map<Object, Object> out = raw.isInterface() ? new LinkedHashMap<Object, Object>()
                    : (Map<Object, Object>) instantiate(raw);
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                out.put(e.getKey(), value(e.getValue(), typeArg(type, 1), where + "." + e.getKey()));
            }
            return out;
        }
        if (Collection.class.isAssignableFrom(raw)) {
            if (!(v instanceof List)) {
                throw mismatch(where, v, "a " + raw.getSimpleName());
            }
            Collection<Object> out;
            if (!raw.isInterface()) {
                out = (Collection<Object>) instantiate(raw);
            } else if (Set.class.isAssignableFrom(raw)) {
                out = new LinkedHashSet<Object>();
            } else {
                out = new ArrayList<Object>();
            }
            int i = 0;
            for (Object item : (List<?>) v) {
                out.add(value(item, typeArg(type, 0), where + "[" + i++ + "]"));
            }
            return out;
        }
        if (raw.isArray()) {
            if (!(v instanceof List)) {
                throw mismatch(where, v, "an array");
            }
            List<?> list = (List<?>) v;
            Type component = type instanceof GenericArrayType
                    ? ((GenericArrayType) type).getGenericComponentType() : raw.getComponentType();
            Object array = java.lang.reflect.Array.newInstance(raw.getComponentType(), list.size());
            for (int i = 0; i < list.size(); i++) {
                java.lang.reflect.Array.set(array, i, value(list.get(i), component, where + "[" + i + "]"));
            }
            return array;
        }
        if (raw.isInstance(v)) {
            return v;
        }
        if (v instanceof Map) {
            return pojo((Map<?, ?>) v, raw, where);
        }
        throw mismatch(where, v, raw.getName());
    }

    private static Object number(Number n, Class<?> raw, String where) {
        if (raw == int.class || raw == Integer.class) {
            return n.intValue();
        }
        if (raw == long.class || raw == Long.class) {
            return n.longValue();
        }
        if (raw == double.class || raw == Double.class) {
            return n.doubleValue();
        }
        if (raw == float.class || raw == Float.class) {
            return n.floatValue();
        }
        if (raw == short.class || raw == Short.class) {
            return n.shortValue();
        }
        if (raw == byte.class || raw == Byte.class) {
            return n.byteValue();
        }
        if (raw == BigDecimal.class) {
            return new BigDecimal(n.toString());
        }
        if (raw == BigInteger.class) {
            return n instanceof BigInteger ? n : BigInteger.valueOf(n.longValue());
        }
        if (raw == Number.class) {
            return n;
        }
        throw mismatch(where, n, raw.getName());
    }

    private static Object instantiate(Class<?> raw) {
        try {
            java.lang.reflect.Constructor<?> ctor = raw.getDeclaredConstructor();
            ctor.setAccessible(true);
            return ctor.newInstance();
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ConversionException("Cannot create a " + raw.getName()
                    + ": it needs a no-argument constructor (" + e + ")");
        }
    }

    /** Fill a POJO from a JSON object: setters first, then public fields; unknown keys are ignored. */
    private static Object pojo(Map<?, ?> map, Class<?> raw, String where) {
        Object target = instantiate(raw);
        Set<String> done = new HashSet<String>();
        for (Method m : raw.getMethods()) {
            String name = m.getName();
            if (Modifier.isStatic(m.getModifiers()) || !name.startsWith("set") || name.length() < 4
                    || m.getParameterTypes().length != 1) {
                continue;
            }
            String prop = Character.toLowerCase(name.charAt(3)) + name.substring(4);
            if (!map.containsKey(prop) || done.contains(prop)) {
                continue;
            }
            Object v = value(map.get(prop), m.getGenericParameterTypes()[0], where + "." + prop);
            try {
                m.invoke(target, v);
            } catch (ReflectiveOperationException e) {
                throw new ConversionException("Cannot set " + where + "." + prop + ": " + e);
            }
            done.add(prop);
        }
        for (Field f : raw.getFields()) {
            String prop = f.getName();
            if (Modifier.isStatic(f.getModifiers()) || Modifier.isFinal(f.getModifiers())
                    || !map.containsKey(prop) || done.contains(prop)) {
                continue;
            }
            try {
                f.set(target, value(map.get(prop), f.getGenericType(), where + "." + prop));
            } catch (IllegalAccessException e) {
                throw new ConversionException("Cannot set " + where + "." + prop + ": " + e);
            }
        }
        return target;
    }
}
