// An on-demand Node.js function (ES module, async handler).
export const handler = async (event, context) => {
  const subject = context.clientContext?.custom?.subject;
  return {
    message: `Hello from Node.js ${process.version}, ${event?.name ?? 'world'}!`,
    requestId: context.awsRequestId,
    topic: subject ?? null,
  };
};
