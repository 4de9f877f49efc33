/* global performance, setTimeout, clearTimeout */
// A process of bench-chat.mjs's fan-out rows: holds a share of the room's socket.io clients, so
// that the clients' own work (parsing every delivery) runs beside the room server rather than in
// the process that measures it. Driven over the IPC channel of child_process.fork:
//   { cmd: 'connect', urls, from, to }            clients from..to-1, client i on urls[i % n]
//   { cmd: 'send', tag, t0, plan }                 sends the plan's messages of its own clients
//   { cmd: 'await', tag, accepted, timeoutMs }     waits until every client got `accepted` messages
//   { cmd: 'close' }
// Every message's text is `<tag> <send time, epoch ms> <index>`; latency is the time from that
// send to each delivery (one clock: the machine's). Deliveries come as `chat:message` (one event
// per message) or `chat:batch` (an array of messages), whichever the server speaks.
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';

const parser = process.env.BENCH_MSGPACK_PARSER ? await import(process.env.BENCH_MSGPACK_PARSER) : undefined;
const now = () => performance.timeOrigin + performance.now();
/** @type {{ socket: import('socket.io-client').Socket, index: number }[]} */
const clients = [];
/** Per tag: deliveries, latencies and per-client counts. */
const runs = new Map();

function runOf(tag) {
  let run = runs.get(tag);
  if (!run) {
    run = { delivered: 0, latencies: [], perClient: new Map(), last: 0 };
    runs.set(tag, run);
  }
  return run;
}

function onMessage(index, m, at) {
  const text = m?.text;
  if (typeof text !== 'string') return;
  const space = text.indexOf(' ');
  const run = runs.get(text.slice(0, space));
  if (!run) return;
  const rest = text.slice(space + 1).split(' ');
  run.delivered++;
  run.last = at;
  run.latencies.push(at - Number(rest[0]));
  run.perClient.set(index, (run.perClient.get(index) ?? 0) + 1);
}

function connectClient(url, index) {
  const socket = io(url, {
    auth: { role: 'viewer', name: `Bench ${index}` },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(parser ? { parser } : {}),
  });
  socket.on('chat:message', (m) => onMessage(index, m, now()));
  socket.on('chat:batch', (batch) => {
    const at = now();
    const list = Array.isArray(batch) ? batch : batch?.messages;
    if (Array.isArray(list)) for (const m of list) onMessage(index, m, at);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('client connect timed out')), 30_000);
    socket.once('welcome', () => {
      clearTimeout(timer);
      resolve({ socket, index });
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function connect({ urls, from, to }) {
  const t0 = performance.now();
  // A few at a time: a real room fills over seconds, and this keeps the handshakes bounded.
  for (let i = from; i < to; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(to, i + 10); j++) batch.push(connectClient(urls[j % urls.length], j));
    clients.push(...(await Promise.all(batch)));
  }
  return { connected: clients.length, ms: performance.now() - t0 };
}

/** Sends `plan` (a list of [at ms after t0, client index]) for the clients this process holds. */
async function send({ tag, t0, plan }) {
  runOf(tag);
  const own = new Map(clients.map((c) => [c.index, c.socket]));
  const mine = plan
    .map(([at, client], k) => ({ at: t0 + at, socket: own.get(client), k }))
    .filter((p) => p.socket);
  let accepted = 0;
  let refused = 0;
  const acks = [];
  for (let i = 0; i < mine.length;) {
    const wait = mine[i].at - now();
    if (wait > 1) await sleep(wait - 0.5);
    const due = now();
    for (; i < mine.length && mine[i].at <= due + 0.5; i++) {
      const { socket, k } = mine[i];
      acks.push(
        socket
          .timeout(30_000)
          .emitWithAck('chat:send', { text: `${tag} ${now()} ${k}` })
          .then(
            (ack) => (ack?.ok ? accepted++ : refused++),
            () => refused++,
          ),
      );
    }
  }
  await Promise.all(acks);
  return { accepted, refused, sent: mine.length };
}

async function awaitDeliveries({ tag, accepted, timeoutMs }) {
  const run = runOf(tag);
  const expected = accepted * clients.length;
  const end = performance.now() + timeoutMs;
  while (run.delivered < expected && performance.now() < end) await sleep(20);
  const short = clients.filter((c) => (run.perClient.get(c.index) ?? 0) !== accepted).length;
  runs.delete(tag);
  return { delivered: run.delivered, expected, last: run.last, latencies: run.latencies, short };
}

const commands = {
  connect,
  send,
  await: awaitDeliveries,
  close: async () => {
    for (const c of clients) c.socket.close();
    setTimeout(() => process.exit(0), 100);
    return {};
  },
};

process.on('message', (msg) => {
  commands[msg.cmd](msg).then(
    (result) => process.send({ id: msg.id, ok: true, result }),
    (err) => process.send({ id: msg.id, ok: false, error: String(err?.stack ?? err) }),
  );
});
process.on('disconnect', () => process.exit(0));
