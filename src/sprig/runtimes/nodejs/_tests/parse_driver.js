'use strict';
// Feeds HTTP responses to runtime_api_client.js's ResponseParser for test_client.py.
// argv[2]: the client module; stdin: [{ data (base64), split: "whole" | "bytes", end }];
// stdout: one result list per case: the parsed responses, then {ended} or {error}.
const { ResponseParser } = require(process.argv[2]);

const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const results = cases.map((c) => {
  const out = [];
  const parser = new ResponseParser((r) => out.push({
    status: r.status, headers: r.headers, body: r.body.toString('base64'),
  }));
  const data = Buffer.from(c.data, 'base64');
  try {
    if (c.split === 'bytes') {
      for (let i = 0; i < data.length; i++) parser.feed(data.subarray(i, i + 1));
    } else {
      parser.feed(data);
    }
    if (c.end) out.push({ ended: parser.end() });
  } catch (e) {
    out.push({ error: e.name, message: e.message });
  }
  return out;
});
process.stdout.write(JSON.stringify(results));
