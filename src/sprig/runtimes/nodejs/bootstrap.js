'use strict';
/*
 * Sprig's Node.js Lambda bootstrap: the runtime loop between the Lambda Runtime API (2018-06-01)
 * and a user's handler.
 *
 * Why our own and not the aws-lambda-ric npm package: that client needs a native addon built at
 * install time (cmake, g++, curl) and Node >= 22; this file has no dependencies at all, so every
 * device that has `node` can run Node functions. It follows the AWS runtime's behaviour (handler
 * strings, module loading, the context object, callback/async semantics, error documents) so that
 * functions written for AWS Lambda or Greengrass run unchanged.
 *
 * The Runtime API client is runtime_api_client.js beside this file (node:net, one persistent
 * connection, each answer pipelined with the next /next).
 *
 * Environment: AWS_LAMBDA_RUNTIME_API (host:port) or SPRIG_RUNTIME_API_SOCKET (a Unix socket
 * serving the same session, preferred when set), _HANDLER (e.g. "src/app.handler"),
 * LAMBDA_TASK_ROOT (the code directory), the AWS_LAMBDA_FUNCTION_* / AWS_LAMBDA_LOG_* context
 * variables, and AWS_GREENGRASS_LAMBDA_ENCODING_TYPE ("json" or "binary").
 */

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { RuntimeApiClient, parseEndpoint } = require('./runtime_api_client.js');

const API_PREFIX = '/2018-06-01/runtime';

const ERR_IMPORT = 'Runtime.ImportModuleError';
const ERR_HANDLER_NOT_FOUND = 'Runtime.HandlerNotFound';
const ERR_MALFORMED = 'Runtime.MalformedHandlerName';
const ERR_SYNTAX = 'Runtime.UserCodeSyntaxError';
const ERR_UNMARSHAL = 'Runtime.UnmarshalError';
const ERR_SERIALIZE = 'Runtime.SerializationError';
const ERR_REJECTION = 'Runtime.UnhandledPromiseRejection';

class RuntimeError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

// ---- Runtime API client (node:net, one persistent connection: runtime_api_client.js) ----------

// Sprig also serves the same session on a Unix socket, several times cheaper per round trip than
// loopback TCP; the official clients only know AWS_LAMBDA_RUNTIME_API.
const socketPath = process.env.SPRIG_RUNTIME_API_SOCKET || null;
const api = socketPath
  ? new RuntimeApiClient({ path: socketPath }, 'localhost')
  : new RuntimeApiClient(parseEndpoint(process.env.AWS_LAMBDA_RUNTIME_API),
    process.env.AWS_LAMBDA_RUNTIME_API);

/** Log a refusal (e.g. 413 for an oversize response): the server has recorded the failure for
 * the caller; we carry on with the next invocation. */
function checkPosted(res, urlPath) {
  if (res.status < 200 || res.status > 299) {
    console.error(`Runtime API answered ${res.status} to POST ${urlPath}: ${res.body.toString()}`);
  }
  return res;
}

async function post(urlPath, headers, body) {
  return checkPosted(await api.request('POST', urlPath, headers, body), urlPath);
}

// ---- Error documents ---------------------------------------------------------------------------

function errorDocument(err) {
  if (err instanceof Error) {
    const stack = typeof err.stack === 'string' ? err.stack.split('\n') : [];
    return { errorType: err.name || (err.constructor && err.constructor.name) || 'Error',
      errorMessage: err.message === undefined ? '' : String(err.message),
      stackTrace: stack };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch (_e) {
    message = String(err);
  }
  return { errorType: typeof err, errorMessage: message === undefined ? String(err) : message,
    stackTrace: [] };
}

function errorBody(err) {
  return Buffer.from(JSON.stringify(errorDocument(err)));
}

async function postInitError(err) {
  const doc = errorDocument(err);
  console.error(`${doc.errorType}: ${doc.errorMessage}`);
  try {
    await post(`${API_PREFIX}/init/error`, {
      'Content-Type': 'application/json',
      // A header value must be printable ASCII; the body keeps the exact name.
      'Lambda-Runtime-Function-Error-Type': String(doc.errorType).replace(/[^\x20-\x7e]/g, '?'),
    }, Buffer.from(JSON.stringify(doc)));
  } finally {
    process.exit(1);
  }
}

// ---- Loading the handler -----------------------------------------------------------------------

/** Split "dir/sub/module.fn.nested" into the module path and the property path, as AWS does. */
function splitHandler(handler) {
  if (!handler) throw new RuntimeError(ERR_MALFORMED, '_HANDLER is not set');
  if (handler.includes('..')) {
    throw new RuntimeError(ERR_MALFORMED, `'${handler}' is not a valid handler name: '..' is not allowed`);
  }
  const slash = handler.lastIndexOf('/');
  const moduleRoot = handler.slice(0, slash + 1);
  const rest = handler.slice(slash + 1);
  const match = /^([^.]+)\.(.+)$/.exec(rest);
  if (!match || match[2].split('.').some((p) => p === '')) {
    throw new RuntimeError(ERR_MALFORMED,
      `Bad handler ${handler}: expected <path/>module.function, e.g. index.handler`);
  }
  return { modulePath: moduleRoot + match[1], fnPath: match[2].split('.') };
}

/** The "type" of the nearest package.json above `dir` ("commonjs" when there is none). */
function packageType(dir) {
  for (let d = dir; ; d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        return JSON.parse(fs.readFileSync(pkg, 'utf8')).type === 'module' ? 'module' : 'commonjs';
      } catch (_e) {
        return 'commonjs';
      }
    }
    if (path.dirname(d) === d) return 'commonjs';
  }
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_e) {
    return false;
  }
}

function loadError(err, what) {
  if (err instanceof SyntaxError) {
    return new RuntimeError(ERR_SYNTAX, `${err.name}: ${err.message}`);
  }
  if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
    return new RuntimeError(ERR_IMPORT, `Error: Cannot load module '${what}': ${err.message}`);
  }
  return err;
}

// ES modules ignore NODE_PATH, but functions expect bare imports of the packages it provides
// (Sprig's Greengrass SDK shims above all). This resolve hook retries a bare specifier that
// Node could not find with CommonJS resolution, which honours NODE_PATH.
const NODE_PATH_HOOKS = `
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const bare = !/^(\\.{0,2}\\/|\\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
    if (!bare || !err || err.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    const parent = context.parentURL && context.parentURL.startsWith('file:')
      ? context.parentURL : pathToFileURL(process.cwd() + '/').href;
    let found;
    try {
      found = createRequire(parent).resolve(specifier);
    } catch (_e) {
      throw err;
    }
    return { url: pathToFileURL(found).href, shortCircuit: true };
  }
}
`;
let hooksRegistered = false;

function registerNodePathHooks() {
  if (hooksRegistered || !process.env.NODE_PATH) return;
  hooksRegistered = true;
  const mod = require('node:module');
  if (typeof mod.register === 'function') {
    mod.register('data:text/javascript,' + encodeURIComponent(NODE_PATH_HOOKS));
  }
}

async function loadModule(taskRoot, modulePath) {
  const base = path.resolve(taskRoot, modulePath);
  const candidates = [
    [base + '.js', null], [base + '.mjs', 'module'], [base + '.cjs', 'commonjs'], [base, null],
  ];
  for (const [file, fixed] of candidates) {
    if (!isFile(file)) continue;
    const kind = fixed || (file.endsWith('.js') ? packageType(path.dirname(file)) : 'commonjs');
    try {
      if (kind === 'module') {
        registerNodePathHooks();
        return await import(pathToFileURL(file).href);
      }
      return require(file);
    } catch (err) {
      throw loadError(err, modulePath);
    }
  }
  // A directory (its package.json "main" or index.js), or a package from node_modules or
  // NODE_PATH, as AWS allows.
  try {
    let dir = false;
    try {
      dir = fs.statSync(base).isDirectory();
    } catch (_e) {
      dir = false;
    }
    return require(dir ? base : require.resolve(modulePath, { paths: [taskRoot] }));
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(`'${modulePath}'`)) {
      throw new RuntimeError(ERR_IMPORT, `Error: Cannot find module '${modulePath}' in ${taskRoot}`);
    }
    throw loadError(err, modulePath);
  }
}

async function loadHandler(taskRoot, handler) {
  const { modulePath, fnPath } = splitHandler(handler);
  const mod = await loadModule(taskRoot, modulePath);
  const lookup = (root) => fnPath.reduce((o, k) => (o == null ? undefined : o[k]), root);
  let fn = lookup(mod);
  // A CommonJS module loaded by import() exposes module.exports as `default`.
  if (fn === undefined && mod && mod.default !== undefined) fn = lookup(mod.default);
  if (fn === undefined) {
    throw new RuntimeError(ERR_HANDLER_NOT_FOUND, `${handler} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new RuntimeError(ERR_HANDLER_NOT_FOUND, `${handler} is not a function`);
  }
  return fn;
}

// ---- One invocation ----------------------------------------------------------------------------

const env = process.env;
const binaryEncoding = (env.AWS_GREENGRASS_LAMBDA_ENCODING_TYPE || '').toLowerCase() === 'binary';

function parseJsonHeader(value) {
  if (value === undefined || value === '') return undefined;
  return JSON.parse(value);
}

function decodeEvent(res) {
  const type = String(res.headers['content-type'] || 'application/json').split(';')[0].trim();
  if (binaryEncoding || type.toLowerCase() !== 'application/json') return res.body;
  if (res.body.length === 0) return null;
  return JSON.parse(res.body.toString('utf8'));
}

function buildContext(headers, complete) {
  const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
  const context = {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'] || '',
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || '',
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '',
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || '',
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
    clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
    identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
    xRayTraceId: headers['lambda-runtime-trace-id'],
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => (deadline ? Math.max(0, deadline - Date.now()) : 0),
    // The legacy completion API: ends the invocation at once, whatever the event loop holds.
    done: (err, result) => complete(err, result, false),
    succeed: (result) => complete(null, result, false),
    fail: (err) => complete(err === undefined || err === null ? 'handled' : err, undefined, false),
  };
  return context;
}

function encodeResult(result) {
  if (Buffer.isBuffer(result)) return { body: result, type: 'application/octet-stream' };
  if (result instanceof Uint8Array) {
    return { body: Buffer.from(result.buffer, result.byteOffset, result.byteLength),
      type: 'application/octet-stream' };
  }
  const text = JSON.stringify(result === undefined ? null : result);
  return { body: Buffer.from(text === undefined ? 'null' : text), type: 'application/json' };
}

// ---- Waiting for the event loop ----------------------------------------------------------------

// Node opens the stdout/stderr handles on first use; open them now so that a handler's first
// console.log does not look like new work in whenQuiet's count.
void process.stdout;
void process.stderr;

/** How many resources of each type keep the event loop alive (null before Node 16.14). */
function activeResources() {
  if (typeof process.getActiveResourcesInfo !== 'function') return null;
  const counts = new Map();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) || 0) + 1);
  return counts;
}

function holdsNoMoreThan(baseline) {
  const now = activeResources();
  for (const [type, n] of now) {
    if (n > (baseline.get(type) || 0)) return false;
  }
  return true;
}

/**
 * Call `then` once the event loop is empty ('beforeExit', as AWS's runtime does) or, when a
 * `baseline` is given, once it holds no more than it held then. Returns a cancel function.
 *
 * Why the baseline: on AWS the process is frozen between invocations, but a Greengrass function
 * lives on, and long-lived functions keep timers and connections from their init (the
 * Greengrass HelloWorld sample runs a setInterval). Their event loop is never empty, so "wait
 * for the empty event loop" must mean "wait for the work this invocation started".
 */
function whenQuiet(baseline, then) {
  let timer = null;
  const cancel = () => {
    process.removeListener('beforeExit', fire);
    if (timer) clearTimeout(timer);
    timer = null;
  };
  function fire() {
    cancel();
    then();
  }
  process.on('beforeExit', fire);
  if (baseline) {
    const check = (delay) => {
      timer = setTimeout(() => {
        timer = null;
        if (holdsNoMoreThan(baseline)) fire();
        else check(5);
      }, delay);
      timer.unref(); // our own poll must not keep the loop alive
    };
    check(1);
  }
  return cancel;
}

// ---- One invocation ----------------------------------------------------------------------------

let current = null; // { id } while an invocation runs

/** The POST that answers invocation `id` with `err` or `result`. */
function answerRequest(id, err, result) {
  const prefix = `${API_PREFIX}/invocation/${id}`;
  const json = { 'Content-Type': 'application/json' };
  if (err !== null && err !== undefined) {
    return { method: 'POST', path: `${prefix}/error`, headers: json, body: errorBody(err) };
  }
  let encoded;
  try {
    encoded = encodeResult(result);
  } catch (e) {
    return { method: 'POST', path: `${prefix}/error`, headers: json,
      body: errorBody(new RuntimeError(ERR_SERIALIZE, `Unable to stringify response body: ${e.message}`)) };
  }
  return { method: 'POST', path: `${prefix}/response`, headers: { 'Content-Type': encoded.type },
    body: encoded.body };
}

/**
 * Run one invocation; resolves with the request that answers it (see answerRequest), which the
 * main loop sends together with the next /next.
 *
 * Completion, as in AWS's runtime: a returned promise settles it at once; so do context.done,
 * succeed and fail; the callback waits for the event loop (see whenQuiet) unless
 * context.callbackWaitsForEmptyEventLoop is false. A handler that does none of these answers
 * null once the event loop is quiet. Only the first completion counts.
 */
function invoke(handler, res) {
  const id = res.headers['lambda-runtime-aws-request-id'];
  return new Promise((resolveDone) => {
    let finished = false;
    let waiting = null; // cancels the wait of a callback that waits for the event loop
    let idle = null; // cancels the wait that answers null when the handler never completes

    const finish = (err, result) => {
      if (finished) return;
      finished = true;
      current = null;
      if (waiting) waiting();
      if (idle) idle();
      waiting = null;
      idle = null;
      let answer;
      try {
        answer = answerRequest(id, err, result);
      } catch (e) { // e.g. an error object whose getters throw: never leave the caller hanging
        answer = answerRequest(id, new RuntimeError(ERR_SERIALIZE,
          `Unable to serialize the ${err !== null && err !== undefined ? 'error' : 'result'}`));
      }
      resolveDone(answer);
    };

    let context;
    let baseline = null;
    // `wait` is true for the handler's callback, which honours callbackWaitsForEmptyEventLoop.
    const complete = (err, result, wait) => {
      if (finished || waiting) return;
      if (wait && context.callbackWaitsForEmptyEventLoop) {
        waiting = whenQuiet(baseline, () => finish(err, result));
        return;
      }
      finish(err, result);
    };

    let event;
    try {
      context = buildContext(res.headers, complete);
      event = decodeEvent(res);
    } catch (e) {
      finish(new RuntimeError(ERR_UNMARSHAL, `Could not decode the invocation: ${e.message}`));
      return;
    }
    current = { id };
    baseline = activeResources();
    let returned;
    try {
      returned = handler(event, context, (err, result) => complete(err, result, true));
    } catch (e) {
      finish(e);
      return;
    }
    const isPromise = returned && typeof returned.then === 'function';
    if (isPromise) {
      returned.then((r) => complete(null, r, false),
        (e) => complete(e === undefined || e === null ? new Error(String(e)) : e, undefined, false));
    }
    if (!finished && !waiting) {
      // A pending promise is only given up on when the loop is truly empty (AWS); a handler
      // without a callback parameter that returned nothing is done once its own work is.
      const quietBaseline = !isPromise && handler.length < 3 ? baseline : null;
      idle = whenQuiet(quietBaseline, () => complete(null, null, false));
    }
  });
}

// ---- Main loop ---------------------------------------------------------------------------------

process.on('uncaughtException', (err) => {
  console.error('Uncaught exception:', err);
  if (current) {
    const { id } = current;
    current = null;
    post(`${API_PREFIX}/invocation/${id}/error`, { 'Content-Type': 'application/json' },
      errorBody(err)).finally(() => process.exit(129));
  } else {
    process.exit(129);
  }
});

process.on('unhandledRejection', (reason) => {
  const err = new RuntimeError(ERR_REJECTION,
    reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason));
  if (reason instanceof Error && reason.stack) err.stack = reason.stack;
  console.error('Unhandled promise rejection:', reason);
  if (current) {
    const { id } = current;
    current = null;
    post(`${API_PREFIX}/invocation/${id}/error`, { 'Content-Type': 'application/json' },
      errorBody(err)).finally(() => process.exit(128));
  } else {
    process.exit(128);
  }
});

async function main() {
  const taskRoot = path.resolve(env.LAMBDA_TASK_ROOT || process.cwd());
  let handler;
  try {
    handler = await loadHandler(taskRoot, env._HANDLER);
  } catch (err) {
    await postInitError(err);
    return;
  }
  const nextPath = `${API_PREFIX}/invocation/next`;
  let next = api.request('GET', nextPath, {});
  for (;;) {
    let res;
    try {
      res = await next;
    } catch (err) {
      console.error(`Encountered error during attempt to get work: ${err}`);
      process.exit(1);
    }
    if (res.status !== 200 || !res.headers['lambda-runtime-aws-request-id']) {
      console.error(`Runtime API answered ${res.status} to GET next: ${res.body.toString()}`);
      process.exit(1);
    }
    if (res.headers['lambda-runtime-trace-id']) {
      env._X_AMZN_TRACE_ID = res.headers['lambda-runtime-trace-id'];
    } else {
      delete env._X_AMZN_TRACE_ID;
    }
    const answer = await invoke(handler, res);
    // Pipelined: the answer and the next /next leave in one write; Sprig's server sends its
    // 202 together with the next invocation.
    const [posted, following] = api.pipeline([answer,
      { method: 'GET', path: nextPath, headers: {} }]);
    following.catch(() => {}); // awaited on the next turn; a failure is reported there
    next = following;
    try {
      checkPosted(await posted, answer.path);
    } catch (e) {
      console.error(`Could not post the result of ${answer.path}: ${e.message}`);
      process.exit(1);
    }
  }
}

main().catch((err) => {
  console.error('Sprig Node.js runtime failed:', err);
  process.exit(1);
});
