package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;

/** A Java function written against the standard aws-lambda-java-core interfaces. */
public class Hello implements RequestHandler<Map<String, Object>, String> {
    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        Object name = event == null ? null : event.get("name");
        context.getLogger().log("invoked as " + context.getFunctionName());
        return "Hello from Java " + System.getProperty("java.version") + ", "
            + (name == null ? "world" : name) + "!";
    }
}
