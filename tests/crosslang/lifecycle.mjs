// The whole agentfn lifecycle from Node.js: the npm `redis` client and plain FCALL, no Python.
//
//   agentfn render > library.lua
//   REDIS_URL=redis://127.0.0.1:6379 AGENTFN_NAMESPACE=demo node tests/crosslang/lifecycle.mjs library.lua
//
// The same steps as lifecycle.sh: load the library (FUNCTION LOAD), initialise the namespace
// (EVAL each migration), then call every function of the library, one FCALL per transition:
//   1. register an agent with a secret, heartbeat, find it by capability; a wrong secret is DENIED
//   2. wait for work (XREAD BLOCK on what an empty claim names), submit a task, claim it, renew
//      its lease, complete it, read it back; a forged token is DENIED, an attempt number BADARG
//   3. failures: fail with RETRY yes and claim again; run out of attempts (dead) and requeue;
//      cancel a queued task; run the reaper
//   4. a three-step workflow (fetch -> summarize -> publish): claim and complete each step as it
//      is unlocked, share a context document, answer a step that asks for input; cancel another
//   5. messages: send one, broadcast one, read them, acknowledge them
//   6. deregister the agent
// Every call is echoed on stderr; stdout gets name=value lines naming what was made, which
// tests/test_crosslang.py checks with the Python client.
//
// Every function takes KEYS[1] = the namespace root, then positional strings, then
// `OPTION value` pairs; it replies with flat field/value arrays (`record` turns one into an
// object) or arrays of them, the same under RESP2 and RESP3 (node-redis 6 speaks RESP3).
// Values read from stored records are strings; counts a call computes may be integers, so
// compare numbers with Number(). Errors are `CODE message` (e.g. STALE, NOTFOUND, DENIED).
//
// The agent proves who it is with a secret: 16 bytes from the platform's CSPRNG, as hex, passed
// right after the agent id to every call that acts as the agent (register, heartbeat, claim,
// deregister, msg_read, msg_ack). The library stores only its SHA-1. The echo of the calls on
// stderr shows it as <secret>: a secret is never printed.
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const libraryFile = process.argv[2];
if (!libraryFile) throw new Error('usage: node lifecycle.mjs LIBRARY_FILE (the output of agentfn render)');
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const namespace = process.env.AGENTFN_NAMESPACE ?? 'crosslang';
const migrations = process.env.AGENTFN_MIGRATIONS
  ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');
const root = `agentfn:{${namespace}}`;
const agent = 'node-agent-1';
const secret = randomBytes(16).toString('hex');
const wrongSecret = randomBytes(16).toString('hex'); // what another member of the namespace might try
const hidden = new Set([secret, wrongSecret]);

const redis = createClient({ url });
redis.on('error', (error) => console.error('redis:', error.message));
await redis.connect();

/** fcall(name, ...args): FCALL with the namespace root as the one key; fcallReadOnly for no-writes functions. */
const caller = (command) => (name, ...args) => {
  console.error(`${command} ${name} 1 ${root} ${args.map((arg) => (hidden.has(arg) ? '<secret>' : arg)).join(' ')}`);
  return redis.sendCommand([command, name, '1', root, ...args.map(String)]);
};
const fcall = caller('FCALL');
const fcallReadOnly = caller('FCALL_RO');

/** A flat field/value array (like HGETALL's reply) as an object. */
function record(flat) {
  const object = {};
  for (let i = 0; i < flat.length; i += 2) object[flat[i]] = flat[i + 1];
  return object;
}

function expect(what, actual, expected) {
  if (actual !== expected) throw new Error(`${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

const report = (name, value) => console.log(`${name}=${value}`);

/** The code of a library error reply (`CODE message`). */
const errorCode = (error) => String(error?.message ?? '').split(' ', 1)[0];

/** A call that must be refused with this code; a refusal changes nothing and never echoes a secret. */
async function expectRefused(what, code, call) {
  let message;
  try {
    await call;
  } catch (error) {
    message = String(error.message);
  }
  if (message === undefined) throw new Error(`${what} succeeded, expected ${code}`);
  expect(what, errorCode({ message }), code);
  for (const value of hidden) if (message.includes(value)) throw new Error(`${what}: the refusal shows a secret`);
}

/** Claim one task for the agent: the claim reply is {tasks: [task, ...], wait, next_due_ms}. */
async function claimOne() {
  const claim = record(await fcall('agentfn_task_claim', agent, secret, 'COUNT', 1));
  expect('tasks claimed', claim.tasks.length, 1);
  return record(claim.tasks[0]);
}

/** Complete a claimed task with its result (any JSON value). */
const complete = async (task, result) =>
  record(await fcall('agentfn_task_complete', task.id, task.token, JSON.stringify(result)));

// --- Load the library and initialise the namespace -------------------------------------------
expect('FUNCTION LOAD', await redis.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', await readFile(libraryFile, 'utf8')]), 'agentfn');
for (const file of (await readdir(migrations)).filter((name) => /^\d{4}_\w+\.lua$/.test(name)).sort()) {
  // A migration returns 'more' until it is done; then record its number as the schema version.
  const source = await readFile(join(migrations, file), 'utf8');
  let outcome;
  do outcome = await redis.sendCommand(['EVAL', source, '1', root]); while (outcome === 'more');
  expect(file, outcome, 'done');
  await redis.sendCommand(['HSET', `${root}:meta`, 'schema_version', String(Number(file.slice(0, 4)))]);
}
const version = record(await fcallReadOnly('agentfn_version'));
expect('schema_version', version.schema_version, version.library_schema_version);

// --- 1. Register an agent with the capabilities it handles -----------------------------------
// It stays live while it heartbeats within its TTL (judged by the server's clock).
const registered = record(await fcall('agentfn_agent_register', agent, secret, 'echo,fetch,summarize,publish',
  'TTL_MS', 60000, 'METADATA', JSON.stringify({ language: 'node' })));
expect('agent status', registered.status, 'live');
expect('heartbeat', record(await fcall('agentfn_agent_heartbeat', agent, secret, 'TTL_MS', 60000)).status, 'live');
// Without the secret nobody else can act as the agent, nor take its id while it is live.
await expectRefused('heartbeat with a wrong secret', 'DENIED', fcall('agentfn_agent_heartbeat', agent, wrongSecret));
await expectRefused('register of a live id with another secret', 'DENIED',
  fcall('agentfn_agent_register', agent, wrongSecret, 'echo'));
const found = (await fcallReadOnly('agentfn_agent_find', 'echo', 'LIMIT', 10)).map(record);
expect('agents found for echo', found.map((a) => a.id).join(), agent);
report('agent', agent);

// --- 2. Wait for work, submit, claim, complete -----------------------------------------------
// An idle agent's claim returns no task but the streams to wait on, each with an id. XREAD BLOCK
// on exactly those from exactly those ids returns as soon as a task lands in one of them after
// the claim (here it lands before the XREAD, and still wakes it: no lost wake-up). Then claim.
const idle = record(await fcall('agentfn_task_claim', agent, secret, 'COUNT', 1));
expect('tasks for an idle agent', idle.tasks.length, 0);
const streams = idle.wait.filter((_, i) => i % 2 === 0); // wait is [stream, id, stream, id, ...]
const ids = idle.wait.filter((_, i) => i % 2 === 1);
let submitted = record(await fcall('agentfn_task_submit', 'echo', JSON.stringify({ text: 'hello' })));
// In RESP3 (node-redis 6's default) XREAD replies {stream: [[entry id, [field, value, ...]], ...]}.
const woke = await redis.sendCommand(['XREAD', 'BLOCK', '5000', 'STREAMS', ...streams, ...ids]);
const [[[, entry]]] = Object.values(woke);
expect('task that woke the agent', record(entry).task, submitted.id);
let task = await claimOne();
expect('claimed task', task.id, submitted.id);
// The token (`<attempt>-<40 hex>`, derived from the secret) fences the result: a stale worker's
// completion is refused (STALE), and so is a forged one: the attempt number alone is not a token
// (BADARG), the right attempt with other hex is not this attempt's (DENIED).
expect('token', /^1-[0-9a-f]{40}$/.test(task.token), true);
await expectRefused('complete with the attempt number', 'BADARG',
  fcall('agentfn_task_complete', task.id, task.attempt, '"forged"'));
const forged = `${task.attempt}-${randomBytes(20).toString('hex')}`;
await expectRefused('complete with a forged token', 'DENIED',
  fcall('agentfn_task_complete', task.id, forged, '"forged"'));
await expectRefused('fail with a forged token', 'DENIED', fcall('agentfn_task_fail', task.id, forged, 'forged'));
const afterForgeries = record(await fcallReadOnly('agentfn_task_get', task.id));
expect(`state of ${task.id} after the forgeries`, afterForgeries.state, 'running');
// A long handler renews its lease before it runs out; canceled 1 would tell it to stop.
const extended = record(await fcall('agentfn_task_extend', task.id, task.token, 'LEASE_MS', 60000));
expect('canceled', Number(extended.canceled), 0);
expect(`state of ${task.id}`, (await complete(task, { echo: 'hello' })).state, 'completed');
expect(`result of ${task.id}`, record(await fcallReadOnly('agentfn_task_get', task.id)).result, '{"echo":"hello"}');
// Several attempts may end in one agentfn_task_complete_many (count, then task_id token result
// per item); an item it refuses (this attempt again, completed already: STALE) changes nothing.
const again = record(await fcall('agentfn_task_complete_many', 1, task.id, task.token, '"again"'));
expect(`complete_many of ${task.id} again`, again.results[1], 'refused');
expect(`result of ${task.id}`, record(await fcallReadOnly('agentfn_task_get', task.id)).result, '{"echo":"hello"}');
report('task_completed', task.id);

// --- 3. Failures ------------------------------------------------------------------------------
// Fail with RETRY yes, claim again, complete. BACKOFF_MS 0: the retry is due at once, so the
// next claim gets it without waiting (otherwise claim's next_due_ms says when it is due).
// TRACEPARENT: the submitter's W3C trace context; every claim of the task returns it, so each
// attempt's span can be its child.
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
submitted = record(await fcall('agentfn_task_submit', 'echo', JSON.stringify({ text: 'flaky' }),
  'BACKOFF_MS', 0, 'MAX_ATTEMPTS', 3, 'TRACEPARENT', traceparent));
task = await claimOne();
expect('traceparent', task.traceparent, traceparent);
let failed = record(await fcall('agentfn_task_fail', task.id, task.token, 'upstream timed out', 'RETRY', 'yes'));
expect(`state of ${task.id} after a retryable failure`, failed.state, 'queued');
task = await claimOne();
expect('claimed again', task.id, submitted.id);
expect('attempt', Number(task.attempt), 2);
expect('traceparent of the retry', task.traceparent, traceparent);
expect(`state of ${task.id}`, (await complete(task, { echo: 'flaky' })).state, 'completed');
report('task_retried', task.id);

// Out of attempts, a task is dead (in the dead-letter stream) until it is requeued.
submitted = record(await fcall('agentfn_task_submit', 'echo', JSON.stringify({ text: 'doomed' }), 'MAX_ATTEMPTS', 1));
task = await claimOne();
failed = record(await fcall('agentfn_task_fail', task.id, task.token, 'bad gateway', 'RETRY', 'yes'));
expect(`state of ${task.id} out of attempts`, failed.state, 'dead');
const requeued = record(await fcall('agentfn_task_requeue', task.id, 'MAX_ATTEMPTS', 1));
expect(`state of ${task.id} requeued`, requeued.state, 'queued');
task = await claimOne();
expect(`state of ${task.id}`, (await complete(task, { echo: 'doomed' })).state, 'completed');
report('task_requeued', task.id);

// A queued task can be canceled; no agent will get it.
submitted = record(await fcall('agentfn_task_submit', 'echo', JSON.stringify({ text: 'never mind' })));
expect('state before the cancel', record(await fcall('agentfn_task_cancel', submitted.id)).was, 'queued');
report('task_canceled', submitted.id);
// Many tasks may be submitted in one agentfn_task_submit_many (count, then capability payload
// per item; the options apply to all of them): it replies their ids. Canceled here too.
const many = await fcall('agentfn_task_submit_many', 2, 'echo', '"one"', 'echo', '"two"', 'PRIORITY', 'low');
expect('tasks submitted together', many.length, 2);
for (const id of many) {
  expect(`state of ${id} before the cancel`, record(await fcall('agentfn_task_cancel', id)).was, 'queued');
}

// The reaper (any process may run it, agents do periodically) finds nothing to do here.
expect('expired leases', Number(record(await fcall('agentfn_reap', 'LIMIT', 100)).expired_leases), 0);

// --- 4. A three-step workflow: fetch -> summarize -> publish ---------------------------------
// Each step becomes a task once the steps it depends on have completed (in the same call that
// completes the last of them); its inputs are {"<dependency step>": <its result>, ...}.
const definition = {
  steps: [
    { id: 'fetch', capability: 'fetch', input: { url: 'https://example.org' } },
    { id: 'summarize', capability: 'summarize', depends_on: ['fetch'] },
    { id: 'publish', capability: 'publish', depends_on: ['summarize'] },
  ],
};
const workflow = record(await fcall('agentfn_wf_create', JSON.stringify(definition),
  'CONTEXT', JSON.stringify({ topic: 'redis' })));
let inputs = null; // a step with no dependencies gets no inputs
for (const step of ['fetch', 'summarize']) {
  task = await claimOne();
  expect('step claimed', task.step, step);
  expect(`inputs of ${step}`, task.inputs, inputs === null ? '' : JSON.stringify(inputs));
  const result = { text: `${step} done` };
  expect(`state of step ${step}`, (await complete(task, result)).state, 'completed');
  inputs = { [step]: result }; // what the next step receives
}

// The steps share a context document; a write can be a compare-and-set on its version.
const context = record(await fcallReadOnly('agentfn_ctx_get', workflow.id));
expect('context', context.document, '{"topic":"redis"}');
const written = record(await fcall('agentfn_ctx_set', workflow.id, JSON.stringify({ summary: 'ready' }),
  'MODE', 'merge', 'EXPECT_VERSION', context.version));
expect('context version', Number(written.version), 1);

// publish asks for input: its attempt ends with a prompt, the step waits for a signal, and the
// signal runs it again with "_signal" added to its inputs.
task = await claimOne();
expect('step claimed', task.step, 'publish');
await fcall('agentfn_task_complete', task.id, task.token, 'null', 'INPUT_REQUIRED', JSON.stringify({ question: 'publish now?' }));
const waiting = record(await fcallReadOnly('agentfn_wf_get', workflow.id, 'STEPS', 'no'));
expect('steps waiting for input', Number(waiting.input_required), 1);
const signaled = record(await fcall('agentfn_wf_signal', workflow.id, 'publish', JSON.stringify({ approved: true })));
task = await claimOne();
expect("signaled step's task", task.id, signaled.task);
expect('inputs of publish', task.inputs, JSON.stringify({ ...inputs, _signal: { approved: true } }));
expect('state of step publish', (await complete(task, { text: 'publish done' })).state, 'completed');
const finished = record(await fcallReadOnly('agentfn_wf_get', workflow.id));
expect(`state of workflow ${workflow.id}`, finished.state, 'completed');
for (const step of finished.steps.map(record)) expect(`step ${step.id}`, step.state, 'completed');
report('workflow', workflow.id);

// Canceling a workflow cancels its unfinished steps and their tasks.
const other = record(await fcall('agentfn_wf_create', JSON.stringify({ steps: [{ id: 'fetch', capability: 'fetch' }] })));
expect(`state of workflow ${other.id}`, record(await fcall('agentfn_wf_cancel', other.id)).state, 'canceled');
report('workflow_canceled', other.id);

// --- 5. Messages: send, broadcast, read, acknowledge ------------------------------------------
// A message stays in the inbox, and comes back on every read, until it is acknowledged.
const sent = record(await fcall('agentfn_msg_send', 'operator', agent, 'question', JSON.stringify({ text: 'ready?' }),
  'TTL_MS', 60000));
const reached = record(record(await fcall('agentfn_msg_broadcast', 'operator', 'echo', 'announce',
  JSON.stringify({ text: 'new plan' }))).reached); // {agent id: message id}
await expectRefused('inbox read with a wrong secret', 'DENIED', fcall('agentfn_msg_read', agent, wrongSecret));
let inbox = record(await fcall('agentfn_msg_read', agent, secret, 'COUNT', 10));
const messages = inbox.messages.map(record);
expect('messages read', messages.map((m) => m.id).join(), `${sent.id},${reached[agent]}`);
expect('content', JSON.parse(messages[0].content).text, 'ready?');
const acked = record(await fcall('agentfn_msg_ack', agent, secret, messages.map((m) => m.id).join()));
expect('messages removed by the ack', Number(acked.removed), 2);
inbox = record(await fcall('agentfn_msg_read', agent, secret));
expect('messages left after the ack', inbox.messages.length, 0);
report('message', sent.id);
report('broadcast', reached[agent]);

// --- 6. The agent leaves -----------------------------------------------------------------------
await expectRefused('deregister with a wrong secret', 'DENIED', fcall('agentfn_agent_deregister', agent, wrongSecret));
expect('tasks handed back', Number(record(await fcall('agentfn_agent_deregister', agent, secret)).released), 0);

await redis.close();
