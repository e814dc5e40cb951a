package com.amazonaws.services.lambda.runtime;

/**
 * The context of one invocation, as in aws-lambda-java-core, so handlers written for AWS Lambda
 * compile and run unchanged on Sprig.
 */
public interface Context {

    /** The request id of this invocation. */
    String getAwsRequestId();

    String getLogGroupName();

    String getLogStreamName();

    String getFunctionName();

    String getFunctionVersion();

    String getInvokedFunctionArn();

    /** The Cognito identity of the caller, or null. */
    CognitoIdentity getIdentity();

    /** The client context sent with the invocation, or null. */
    ClientContext getClientContext();

    /** Milliseconds left before the invocation times out. */
    int getRemainingTimeInMillis();

    int getMemoryLimitInMB();

    LambdaLogger getLogger();

    /** The X-Ray trace header of this invocation, or null (aws-lambda-java-core 1.2.3+). */
    default String getXrayTraceId() {
        return null;
    }
}
