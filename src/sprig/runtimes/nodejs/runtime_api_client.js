'use strict';
/*
 * The Runtime API client of Sprig's Node.js bootstrap: HTTP/1.1 over one persistent node:net
 * connection (a Unix socket or TCP).
 *
 * Why not node:http: its agent, request and response objects cost about twice the round trip
 * itself on every invocation. The Runtime API needs only a sliver of HTTP/1.1: requests with a
 * Content-Length body, and responses with Content-Length, chunked or close-delimited bodies, read
 * in order from one keep-alive connection. Requests may be pipelined (RuntimeApiClient.pipeline):
 * the bootstrap sends an invocation's answer and its next /next in one write.
 *
 * No dependencies; loaded by bootstrap.js from the same directory.
 */

const net = require('node:net');

const MAX_HEAD = 64 * 1024;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
// Node's http keeps the first of these when a response repeats them; other repeats are joined.
const SINGLE_HEADERS = new Set(['content-length', 'content-type']);
// Bodies up to this size are copied into one buffer with their head (one write); larger ones are
// written as they are, in one writev.
const COPY_LIMIT = 64 * 1024;

class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** `AWS_LAMBDA_RUNTIME_API` ("host:port", "[v6]:port") → { host, port }. */
function parseEndpoint(value) {
  const match = /^([^:]+|\[[^\]]+\]):(\d+)$/.exec(value || '');
  if (!match) {
    const err = new Error(`AWS_LAMBDA_RUNTIME_API must be host:port (got ${JSON.stringify(value)})`);
    err.name = 'Runtime.PlatformError';
    throw err;
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

/**
 * An incremental HTTP/1.1 response parser: feed() bytes as they arrive; `onResponse` is called
 * with { status, headers (lower-case names), body (a Buffer) } for each complete response, in
 * order. Interim 1xx responses are skipped. A body without Content-Length or chunked coding runs
 * to the end of the connection (end()). Malformed input throws ProtocolError.
 */
class ResponseParser {
  constructor(onResponse) {
    this.onResponse = onResponse;
    this.buf = Buffer.alloc(0);
    this.reset();
  }

  reset() {
    this.state = 'head'; // head | fixed | chunk-size | chunk-data | chunk-crlf | trailers | close
    this.status = 0;
    this.headers = null;
    this.parts = [];
    this.size = 0;
    this.remaining = 0;
  }

  feed(chunk) {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.step()) { /* one state transition at a time */ }
  }

  /** The connection ended: completes a close-delimited body. True when nothing was cut off. */
  end() {
    if (this.state === 'close') {
      this.take(this.buf.length);
      this.complete();
    }
    return this.state === 'head' && this.buf.length === 0;
  }

  take(n) {
    if (n === 0) return;
    this.parts.push(this.buf.subarray(0, n));
    this.size += n;
    this.buf = this.buf.subarray(n);
  }

  complete() {
    const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    const res = { status: this.status, headers: this.headers, body };
    this.reset();
    this.onResponse(res);
  }

  /** Parse what `buf` allows in the current state; false when more bytes are needed. */
  step() {
    const buf = this.buf;
    switch (this.state) {
      case 'head': {
        const end = buf.indexOf(HEAD_END);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ProtocolError('response head too large');
          return false;
        }
        this.buf = buf.subarray(end + 4);
        this.startHead(buf.toString('utf8', 0, end));
        return true;
      }
      case 'fixed':
      case 'chunk-data': {
        const n = Math.min(this.remaining, buf.length);
        this.take(n);
        this.remaining -= n;
        if (this.remaining > 0) return false;
        if (this.state === 'fixed') this.complete();
        else this.state = 'chunk-crlf';
        return true;
      }
      case 'chunk-size': {
        const end = buf.indexOf(CRLF);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ProtocolError('chunk size line too long');
          return false;
        }
        const text = buf.toString('latin1', 0, end).split(';')[0].trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(text)) {
          throw new ProtocolError(`bad chunk size ${JSON.stringify(text)}`);
        }
        const size = parseInt(text, 16);
        this.buf = buf.subarray(end + 2);
        this.remaining = size;
        this.state = size === 0 ? 'trailers' : 'chunk-data';
        return true;
      }
      case 'chunk-crlf': {
        if (buf.length < 2) return false;
        if (buf[0] !== 0x0d || buf[1] !== 0x0a) {
          throw new ProtocolError('missing CRLF after chunk data');
        }
        this.buf = buf.subarray(2);
        this.state = 'chunk-size';
        return true;
      }
      case 'trailers': {
        // Trailer fields (ignored) up to an empty line.
        const end = buf.indexOf(CRLF);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ProtocolError('trailers too large');
          return false;
        }
        this.buf = buf.subarray(end + 2);
        if (end === 0) this.complete();
        return true;
      }
      default: // 'close': everything up to the end of the connection (end())
        return false;
    }
  }

  startHead(head) {
    const lines = head.split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!match) throw new ProtocolError(`bad status line ${JSON.stringify(lines[0])}`);
    const status = Number(match[1]);
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ProtocolError(`bad header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (headers[name] === undefined) headers[name] = value;
      else if (!SINGLE_HEADERS.has(name)) headers[name] += `, ${value}`;
    }
    if (status < 200) return; // interim (100 Continue): the final response follows
    this.status = status;
    this.headers = headers;
    const coding = (headers['transfer-encoding'] || '').toLowerCase();
    if (status === 204 || status === 304) {
      this.complete();
    } else if (coding.includes('chunked')) {
      this.state = 'chunk-size';
    } else if (headers['content-length'] !== undefined) {
      const text = headers['content-length'];
      if (!/^\d{1,15}$/.test(text)) {
        throw new ProtocolError(`bad Content-Length ${JSON.stringify(text)}`);
      }
      this.remaining = Number(text);
      this.state = 'fixed';
      if (this.remaining === 0) this.complete();
    } else {
      this.state = 'close';
    }
  }
}

/** The bytes of one request: [head] or [head, body]. */
function encodeRequest(host, req) {
  let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${host}\r\n`
    + 'User-Agent: sprig-nodejs-runtime\r\n';
  const headers = req.headers || {};
  for (const name of Object.keys(headers)) head += `${name}: ${headers[name]}\r\n`;
  if (req.body !== undefined) head += `Content-Length: ${req.body.length}\r\n`;
  const bytes = Buffer.from(`${head}\r\n`, 'latin1');
  return req.body !== undefined && req.body.length > 0 ? [bytes, req.body] : [bytes];
}

/**
 * One persistent connection to the Runtime API, opened on first use and again after the server
 * closed it. Responses are matched to requests in order.
 *
 * The socket is ref'd only while a request is outstanding: an idle connection must not keep the
 * event loop alive, so the bootstrap's wait for an empty event loop sees only the user's work.
 */
class RuntimeApiClient {
  /**
   * `target`: net.createConnection options ({ path } or { host, port }); `host`: the Host header.
   */
  constructor(target, host) {
    this.target = target;
    this.host = host;
    this.socket = null;
    this.waiting = []; // { parts, resolve, reject } per request sent and not yet answered
  }

  /** Send one request ({ method, path, headers, body? }); resolves with the response. */
  request(method, urlPath, headers, body) {
    return this.pipeline([{ method, path: urlPath, headers, body }])[0];
  }

  /**
   * Send several requests in one write, without waiting for the answers in between; returns one
   * promise per request, resolving with { status, headers, body } or rejecting when the
   * connection fails first. Safe with Sprig's server, which handles a connection's requests in
   * order (its answer to a pipelined /response leaves together with the next invocation).
   */
  pipeline(requests) {
    const waiters = [];
    const promises = requests.map((req) => new Promise((resolve, reject) => {
      waiters.push({ parts: encodeRequest(this.host, req), resolve, reject });
    }));
    this.send(waiters);
    return promises;
  }

  send(waiters) {
    const socket = this.socket || this.connect();
    this.waiting.push(...waiters);
    socket.ref();
    const parts = waiters.flatMap((w) => w.parts);
    const size = parts.reduce((n, p) => n + p.length, 0);
    if (parts.length === 1 || size <= COPY_LIMIT) {
      socket.write(parts.length === 1 ? parts[0] : Buffer.concat(parts, size));
    } else {
      socket.cork();
      for (const p of parts) socket.write(p);
      socket.uncork();
    }
  }

  connect() {
    const socket = net.createConnection(this.target);
    if (!this.target.path) socket.setNoDelay(true);
    const parser = new ResponseParser((res) => this.answered(socket, res));
    this.socket = socket;
    socket.on('data', (chunk) => {
      try {
        parser.feed(chunk);
      } catch (err) {
        this.fail(socket, err);
      }
    });
    socket.on('end', () => {
      try {
        parser.end();
      } catch (err) {
        this.fail(socket, err);
        return;
      }
      this.fail(socket, new Error('the Runtime API closed the connection'));
    });
    socket.on('error', (err) => this.fail(socket, err));
    socket.on('close', () => this.fail(socket, new Error('the Runtime API connection closed')));
    return socket;
  }

  answered(socket, res) {
    if (this.socket !== socket) return; // a response after we gave up on this connection
    const waiter = this.waiting.shift();
    if (!waiter) {
      this.fail(socket, new ProtocolError(`unexpected response ${res.status} from the Runtime API`));
      return;
    }
    if ((res.headers.connection || '').toLowerCase() === 'close') {
      // The server handles nothing after this response on this connection (RFC 9112 §9.6), so
      // requests pipelined behind it were never seen: send them again on a new connection.
      this.socket = null;
      socket.destroy();
      const unanswered = this.waiting;
      this.waiting = [];
      if (unanswered.length) this.send(unanswered);
    } else if (this.waiting.length === 0) {
      socket.unref();
    }
    waiter.resolve(res);
  }

  /** Drop `socket` (if still ours) and reject whatever it still owed. */
  fail(socket, err) {
    if (this.socket !== socket) return;
    this.socket = null;
    socket.destroy();
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(err);
  }
}

module.exports = { ProtocolError, ResponseParser, RuntimeApiClient, encodeRequest, parseEndpoint };
