// Node's in-process baseline: lambda-local's execute() on the echo handler, loaded once
// (lambdaFunc), timed per call. Usage: node node_loop.js MODULES_DIR HANDLER_DIR COUNT WARMUP SIZE
const path = require('path');
const [modules, handlerDir, count, warmup, size] = process.argv.slice(2);
const lambdaLocal = require(path.join(modules, 'lambda-local'));
lambdaLocal.getLogger().level = 'error';
const fn = require(path.join(handlerDir, 'index.js'));
const n = Number(size);
const event = n <= 32 ? { name: 'bench' } : { data: 'x'.repeat(n - 12) };

async function once() {
  const out = await lambdaLocal.execute({
    event, lambdaFunc: fn, lambdaHandler: 'handler', verboseLevel: 0, timeoutMs: 3000,
  });
  if (JSON.stringify(out) !== JSON.stringify(event)) throw new Error('echo mismatch');
}

(async () => {
  for (let i = 0; i < Number(warmup); i++) await once();
  const samples = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < Number(count); i++) {
    const t0 = process.hrtime.bigint();
    await once();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ samples_us: samples, elapsed_s: elapsed }) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
