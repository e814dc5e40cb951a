package com.amazonaws.services.lambda.runtime;

/**
 * A handler whose input is converted from the event (JSON) and whose output is serialized to JSON.
 *
 * @param <I> the input type
 * @param <O> the output type
 */
public interface RequestHandler<I, O> {

    O handleRequest(I input, Context context);
}
