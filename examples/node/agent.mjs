// A Node.js agentfn agent: handles one capability by calling the library's functions directly.
//
//   cd examples/node && npm ci
//   REDIS_URL=redis://127.0.0.1:6379 AGENTFN_NAMESPACE=default node agent.mjs --id node-1 --capability word_count
//
// The loop every agent runs, in any language (docs/PROTOCOL.md has each function):
//   0. Make a secret: 16 random bytes from the platform's CSPRNG, as hex. Every call that acts as
//      the agent (register, heartbeat, claim, deregister; inbox reads and acks) passes it right
//      after the agent id; the library keeps only its SHA-1, and refuses a wrong one with DENIED.
//      Never print or log it.
//   1. agentfn_agent_register: announce the agent and its capability, with a liveness TTL. While
//      an agent of the same id is live under another secret (an earlier process that did not
//      deregister), the reply is DENIED: this agent says so and exits; run it again once the
//      old registration has lapsed (its TTL), or give it another --id.
//   2. agentfn_task_claim: take a task. When none is ready, the reply names the streams to wait
//      on and the ids to wait from: XREAD BLOCK on exactly those, so a task submitted between
//      the claim and the XREAD still wakes the agent. Then claim again.
//   3. Handle the task, then agentfn_task_complete with its token (`<attempt>-<40 hex>`, derived
//      from the secret: a stale worker's result is refused with STALE, a forged one with
//      DENIED). A handler that throws fails the task with agentfn_task_fail RETRY yes, so it is
//      retried with backoff. (A handler that may outlive the task's timeout_ms renews its lease
//      with agentfn_task_extend; this one is quick.)
//   4. agentfn_agent_heartbeat at least every third of the TTL (the XREAD timeout sees to it).
//   5. On SIGTERM or SIGINT: agentfn_agent_deregister (held tasks are handed back at once), exit.
//
// The handler here counts the words of payload.text and of the `text` of every result its
// workflow step received from its dependencies (the task's inputs). One JSON line per event
// goes to stdout: {"event":"registered",...}, {"event":"completed",...}, {"event":"stopped"}.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';

const { values: options } = parseArgs({
  options: {
    id: { type: 'string', default: `node-${process.pid}` },
    capability: { type: 'string', default: 'word_count' },
    'ttl-ms': { type: 'string', default: '30000' },
  },
});
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const root = `agentfn:{${process.env.AGENTFN_NAMESPACE ?? 'default'}}`;
const agentId = options.id;
const ttlMs = Number(options['ttl-ms']);
/** Proves this process is the agent: fresh for each process, never printed. */
const secret = randomBytes(16).toString('hex');

/** What this agent does with one task: returns the result (any JSON value). */
function handle(task) {
  const texts = [task.payload?.text, ...Object.values(task.inputs ?? {}).map((result) => result?.text)];
  const words = texts.filter((text) => typeof text === 'string').join(' ').split(/\s+/).filter(Boolean);
  return { words: words.length, agent: agentId, language: 'node' };
}

const redis = createClient({ url });
const blocking = redis.duplicate(); // XREAD BLOCK holds its connection: give it its own
for (const client of [redis, blocking]) client.on('error', (error) => console.error('redis:', error.message));
await Promise.all([redis.connect(), blocking.connect()]);

/** FCALL a library function with the namespace root as its one key; arguments are strings.
 *  MOVING (Redis Cluster: the namespace's slot is being moved; nothing was written) is sent
 *  again after a growing pause, for at most about 30 s. */
async function fcall(name, ...args) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await redis.sendCommand(['FCALL', name, '1', root, ...args.map(String)]);
    } catch (error) {
      if (errorCode(error) !== 'MOVING' || attempt >= 60) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, 10 * 2 ** attempt)));
    }
  }
}

/** A flat field/value reply (like HGETALL's) as an object. */
function record(flat) {
  const object = {};
  for (let i = 0; i < flat.length; i += 2) object[flat[i]] = flat[i + 1];
  return object;
}

/** The code of a library error reply (`CODE message`): STALE, LAPSED, NOTFOUND, DENIED... */
const errorCode = (error) => String(error?.message ?? '').split(' ', 1)[0];

const emit = (event, fields = {}) => console.log(JSON.stringify({ event, agent: agentId, ...fields }));

async function serverMs() {
  const [seconds, micros] = await redis.sendCommand(['TIME']);
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Block until a stream named by the claim reply gets an entry, a retry falls due, or it is time to heartbeat. */
async function waitForWork(claim) {
  let blockMs = Math.floor(ttlMs / 3);
  if (claim.next_due_ms !== '') blockMs = Math.min(blockMs, Number(claim.next_due_ms) - (await serverMs()));
  if (blockMs < 1) return;
  const keys = claim.wait.filter((_, i) => i % 2 === 0);
  const ids = claim.wait.filter((_, i) => i % 2 === 1);
  await blocking.sendCommand(['XREAD', 'BLOCK', String(blockMs), 'STREAMS', ...keys, ...ids]);
}

async function runTask(task) {
  const claimed = {
    ...task,
    payload: JSON.parse(task.payload),
    inputs: task.inputs === '' ? null : JSON.parse(task.inputs),
  };
  let result;
  try {
    result = handle(claimed);
  } catch (error) {
    const failed = record(await fcall('agentfn_task_fail', task.id, task.token, String(error), 'RETRY', 'yes'));
    emit('failed', { task: task.id, state: failed.state });
    return;
  }
  try {
    const completed = record(await fcall('agentfn_task_complete', task.id, task.token, JSON.stringify(result)));
    emit('completed', { task: task.id, state: completed.state, workflow: task.workflow, step: task.step });
  } catch (error) {
    if (errorCode(error) !== 'STALE') throw error;
    emit('stale', { task: task.id }); // the lease ran out and another attempt owns the task now
  }
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    stopping = true;
    blocking.destroy(); // ends a pending XREAD at once
  });
}

const register = () => fcall('agentfn_agent_register', agentId, secret, options.capability, 'TTL_MS', ttlMs,
  'METADATA', JSON.stringify({ language: 'node', pid: process.pid }));

/** Call a function that acts as the live agent; one that lapsed (say, it was paused) registers again. */
async function asLiveAgent(name, ...args) {
  try {
    return await fcall(name, agentId, secret, ...args);
  } catch (error) {
    if (errorCode(error) !== 'LAPSED') throw error;
    await register();
    return fcall(name, agentId, secret, ...args);
  }
}

try {
  await register();
} catch (error) {
  if (errorCode(error) !== 'DENIED') throw error;
  // The message names the agent and says until when it stays live; it never contains a secret.
  console.error(`agent ${agentId} is live in another process: ${error.message}`);
  await Promise.all([redis.close(), blocking.close()]);
  process.exit(1);
}
emit('registered', { capability: options.capability });
let lastHeartbeat = Date.now(); // a local interval only: deadlines themselves are the server's
while (!stopping) {
  const claim = record(await asLiveAgent('agentfn_task_claim', 'COUNT', 1));
  for (const task of claim.tasks) await runTask(record(task));
  if (claim.tasks.length === 0) {
    try {
      await waitForWork(claim);
    } catch (error) {
      if (!stopping) throw error;
    }
  }
  if (!stopping && Date.now() - lastHeartbeat >= ttlMs / 3) {
    await asLiveAgent('agentfn_agent_heartbeat');
    lastHeartbeat = Date.now();
  }
}
await fcall('agentfn_agent_deregister', agentId, secret);
emit('stopped');
await redis.close();
