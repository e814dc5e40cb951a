package io.sprig.runtime;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Sprig's Java Lambda runtime: loads the handler, then loops on the Runtime API (next, run,
 * response or error) until the worker is stopped.
 *
 * <p>Usage: {@code java -cp <runtime jar>:<code> io.sprig.runtime.Bootstrap <handler>}, the
 * handler being {@code package.Class::method} or {@code package.Class} (else {@code _HANDLER}).
 * The Runtime API is {@code SPRIG_RUNTIME_API_SOCKET} (a Unix socket, Java 16+) when set, else
 * {@code AWS_LAMBDA_RUNTIME_API} (host:port).
 * The code is on the class path (a jar, or a directory with classes/ and lib/*.jar); a zip with
 * that layout is named by the system property {@code sprig.codeZip} and unpacked to a temporary
 * directory first, as AWS does with a deployment package.
 */
public final class Bootstrap {

    private Bootstrap() {
    }

    public static void main(String[] args) {
        String handlerName = args.length > 0 && !args[0].isEmpty() ? args[0] : System.getenv("_HANDLER");
        boolean binary = "binary".equalsIgnoreCase(System.getenv("AWS_GREENGRASS_LAMBDA_ENCODING_TYPE"));
        RuntimeApiClient client;
        try {
            client = new RuntimeApiClient(System.getenv("AWS_LAMBDA_RUNTIME_API"),
                    System.getenv("SPRIG_RUNTIME_API_SOCKET"), binary);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(1);
            return;
        }
        Handler handler;
        try {
            ClassLoader loader = codeLoader();
            Thread.currentThread().setContextClassLoader(loader);
            handler = Handler.load(handlerName, loader);
        } catch (Throwable t) {
            System.err.println(Errors.typeOf(t) + ": " + t.getMessage());
            try {
                client.initError(Errors.document(t));
            } catch (IOException e) {
                System.err.println("Could not report the init error: " + e);
            }
            System.exit(1);
            return;
        }
        loop(client, handler);
    }

    private static void loop(RuntimeApiClient client, Handler handler) {
        while (true) {
            RuntimeApiClient.Invocation inv;
            try {
                inv = client.next();
            } catch (IOException e) {
                System.err.println("Encountered error during attempt to get work: " + e);
                System.exit(1);
                return;
            }
            Handler.Result result = null;
            Throwable failure = null;
            try {
                result = handler.invoke(inv.payload, inv.json, inv.context);
            } catch (Throwable t) {
                failure = t;
                t.printStackTrace();
            }
            try {
                if (failure == null) {
                    client.respond(inv.requestId, result.body, result.contentType);
                } else {
                    client.error(inv.requestId, Errors.document(failure));
                }
            } catch (IOException e) {
                System.err.println("Could not post the result of " + inv.requestId + ": " + e);
                System.exit(1);
            }
            if (failure instanceof OutOfMemoryError || failure instanceof InternalError) {
                // The JVM may be in no state to go on: let the manager start a fresh worker.
                System.exit(1);
            }
        }
    }

    private static ClassLoader codeLoader() throws IOException {
        ClassLoader parent = Bootstrap.class.getClassLoader();
        String zip = System.getProperty("sprig.codeZip");
        if (zip == null || zip.isEmpty()) {
            return parent;
        }
        File dirFile = unpacked(new File(zip));
        Path dir = dirFile.toPath();
        List<URL> urls = new ArrayList<URL>();
        urls.add(dir.toUri().toURL());
        urls.add(new File(dir.toFile(), "classes").toURI().toURL());
        File[] jars = new File(dir.toFile(), "lib").listFiles();
        if (jars != null) {
            java.util.Arrays.sort(jars);
            for (File jar : jars) {
                if (jar.getName().endsWith(".jar")) {
                    urls.add(jar.toURI().toURL());
                }
            }
        }
        return new URLClassLoader(urls.toArray(new URL[0]), parent);
    }

    /**
     * The zip unpacked once into the temporary directory, named after its path, size and time,
     * so that every worker of the same code shares one copy (unpacked aside, then renamed into
     * place: concurrent workers never see half a tree).
     */
    private static File unpacked(File zip) throws IOException {
        String key = zip.getCanonicalPath() + "\0" + zip.length() + "\0" + zip.lastModified();
        String digest;
        try {
            byte[] hash = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(key.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder();
            for (int i = 0; i < 8; i++) {
                hex.append(String.format("%02x", hash[i] & 0xff));
            }
            digest = hex.toString();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IOException(e);
        }
        File tmp = new File(System.getProperty("java.io.tmpdir"));
        File target = new File(tmp, "sprig-java-code-" + digest);
        if (target.isDirectory()) {
            return target;
        }
        Path partial = Files.createTempDirectory(tmp.toPath(), "sprig-java-code-");
        unzip(zip, partial.toFile());
        try {
            Files.move(partial, target.toPath(), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            if (!target.isDirectory()) {
                throw e;
            }
            delete(partial.toFile()); // another worker won the race: use its copy
        }
        return target;
    }

    private static void delete(File f) {
        File[] children = f.listFiles();
        if (children != null) {
            for (File c : children) {
                delete(c);
            }
        }
        if (!f.delete()) {
            f.deleteOnExit();
        }
    }

    private static void unzip(File zip, File dest) throws IOException {
        String root = dest.getCanonicalPath() + File.separator;
        InputStream raw = new java.io.FileInputStream(zip);
        ZipInputStream in = new ZipInputStream(raw);
        try {
            byte[] buf = new byte[16384];
            ZipEntry e;
            while ((e = in.getNextEntry()) != null) {
                File out = new File(dest, e.getName());
                if (!out.getCanonicalPath().startsWith(root)) {
                    throw new IOException("Zip entry outside the code directory: " + e.getName());
                }
                if (e.isDirectory()) {
                    out.mkdirs();
                    continue;
                }
                out.getParentFile().mkdirs();
                OutputStream o = new FileOutputStream(out);
                try {
                    int n;
                    while ((n = in.read(buf)) > 0) {
                        o.write(buf, 0, n);
                    }
                } finally {
                    o.close();
                }
            }
        } finally {
            in.close();
        }
    }
}
