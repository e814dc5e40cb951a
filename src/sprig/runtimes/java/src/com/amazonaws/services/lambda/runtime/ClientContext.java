package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** The client context of an invocation (Greengrass puts the topic in custom "subject"). */
public interface ClientContext {

    Client getClient();

    Map<String, String> getCustom();

    Map<String, String> getEnvironment();
}
