// Load generator of `make bench`: drives one server over WebSocket (Phoenix V2 JSON arrays) and
// prints one JSON object with its figures on stdout. bench/bench_compare.py runs it pinned to a
// core of its own, the server pinned to another, so a figure can be told from the generator's
// limit by the two processes' CPU, which it samples from /proc over each measurement window.
//
//   node bench/load/gen.mjs --url ws://127.0.0.1:4000/socket/websocket --server-pid PID \
//       --workload echo|relay|churn [options below]
//
// Frames are built as strings and replies recognised by a byte search rather than parsed: the
// generator has one core, and what it spends per message is what it cannot offer the server.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const DEFAULTS = {
  url: 'ws://127.0.0.1:4000/socket/websocket',
  'server-pid': '0',
  'clk-tck': '100',
  workload: 'echo',
  warmup: '1', // seconds of load before a window opens
  duration: '3', // seconds a window lasts
  drain: '1', // seconds a relay step waits for late deliveries
  // echo
  conns: '100',
  windows: '1,10', // pushes in flight per connection, one window each
  // relay
  rooms: '500',
  rates: '2000,5000,10000,15000,20000,30000',
  'p99-ms': '50',
  'min-delivered': '0.95',
  'sdp-bytes': '1000',
  // churn
  loops: '50',
};

function parseArgs(argv) {
  const out = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = argv[++i];
  }
  return out;
}

const A = parseArgs(process.argv.slice(2));
const SERVER_PID = Number(A['server-pid']);
const CLK_TCK = Number(A['clk-tck']);
const NONCE = randomUUID().slice(0, 8); // user ids differ between runs against one server
const now = () => performance.now(); // milliseconds, monotonic
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- CPU and windows ---------------------------------------------------------------------------
function cpuTicks(pid) {
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, every thread
}

function mark() {
  return { t: now(), srv: cpuTicks(SERVER_PID), gen: cpuTicks(process.pid) };
}

// Warm up, then count for the window: `count(true)` at its start, `count(false)` at its end;
// the marks taken at either end.
async function measured(count) {
  await sleep(Number(A.warmup) * 1000);
  const a = mark();
  count(true);
  await sleep(Number(A.duration) * 1000);
  count(false);
  return [a, mark()];
}

function span(a, b) {
  return {
    wall_s: (b.t - a.t) / 1000,
    srv_cpu_s: (b.srv - a.srv) / CLK_TCK,
    gen_cpu_s: (b.gen - a.gen) / CLK_TCK,
  };
}

// Log-bucketed latencies (1 % wide buckets from 1 µs): percentiles of millions of samples with
// no sorting and a fixed few KB.
class Hist {
  constructor() {
    this.counts = new Uint32Array(2600);
    this.n = 0;
  }
  add(ms) {
    const us = ms * 1000;
    this.counts[us < 1 ? 0 : Math.min(2599, Math.floor(Math.log(us) * 100))]++;
    this.n++;
  }
  q(p) {
    if (!this.n) return null;
    const want = Math.max(1, Math.ceil(p * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= want) return Math.exp((i + 1) / 100) / 1000;
    }
    return null;
  }
}

// Every timed frame carries the instant it was sent; echo replies and relayed messages bring it
// back, so a round trip needs no table of refs.
const STAMP = Buffer.from('"bench_t":');
function stampOf(buf) {
  const i = buf.indexOf(STAMP);
  return i < 0 ? -1 : parseFloat(buf.toString('latin1', i + STAMP.length, i + STAMP.length + 24));
}
const ERROR = Buffer.from('"status":"error"');

// -- connections -------------------------------------------------------------------------------
class Conn {
  constructor(ws, user) {
    this.ws = ws;
    this.user = user;
    this.ref = 1;
    this.waiting = new Map(); // ref -> resolve, while a join or leave is awaited
    this.onFrame = null;
    this.closed = new Promise((resolve) => ws.once('close', resolve));
    ws.on('message', (data) => {
      if (this.waiting.size) {
        const msg = JSON.parse(data.toString());
        const resolve = msg[3] === 'phx_reply' && this.waiting.get(msg[1]);
        if (resolve) {
          this.waiting.delete(msg[1]);
          resolve(msg[4]);
          return;
        }
      }
      if (this.onFrame) this.onFrame(data);
    });
  }

  call(joinRef, topic, event, payload = {}) {
    const ref = String(++this.ref);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${event} in 10 s`)), 10000);
      this.waiting.set(ref, (reply) => {
        clearTimeout(timer);
        if (reply.status === 'ok') resolve(reply.response);
        else reject(new Error(`${event} refused: ${JSON.stringify(reply.response)}`));
      });
      this.ws.send(JSON.stringify([joinRef, ref, topic, event, payload]));
    });
  }

  async close() {
    this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 5000);
    await this.closed;
    clearTimeout(timer);
  }
}

function connect(user) {
  const url = `${A.url}?vsn=2.0.0&token=${encodeURIComponent(user)}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      maxPayload: 64 * 1024 * 1024,
      // An all-zero mask lets ws skip masking: legal on the wire, and generator CPU saved.
      generateMask: (mask) => mask.fill(0),
    });
    ws.once('open', () => {
      ws.removeListener('error', reject);
      ws.on('error', () => {}); // a reset at the end of a run; 'close' follows
      resolve(new Conn(ws, user));
    });
    ws.once('error', reject);
  });
}

// fn(i) for i < n, at most `limit` at a time.
async function pool(n, limit, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, limit) }, worker));
  return out;
}

async function closeAll(conns) {
  await pool(conns.length, 200, (i) => conns[i].close());
}

// -- echo: closed loop, W pushes in flight per connection --------------------------------------
async function echo() {
  const n = Number(A.conns);
  const conns = await pool(n, 50, async (i) => {
    const c = await connect(`echo-${NONCE}-${i}`);
    c.topic = `echo:${randomUUID()}`;
    await c.call('1', c.topic, 'phx_join');
    return c;
  });
  const windows = [];
  for (const W of A.windows.split(',').map(Number)) windows.push(await echoWindow(conns, W));
  await closeAll(conns);
  return { workload: 'echo', conns: n, windows };
}

async function echoWindow(conns, W) {
  const hist = new Hist();
  let running = true;
  let counting = false;
  let replies = 0;
  let errors = 0;
  let outstanding = 0;
  const push = (c) => {
    outstanding++;
    c.ws.send(`["1","${++c.ref}","${c.topic}","ping",{"bench_t":${now().toFixed(3)},"body":"hello"}]`);
  };
  for (const c of conns) {
    c.onFrame = (data) => {
      const sent = stampOf(data);
      if (sent < 0) return; // not a reply to a timed push
      outstanding--;
      if (data.includes(ERROR)) errors++;
      else if (counting) {
        replies++;
        hist.add(now() - sent);
      }
      if (running) push(c);
    };
    for (let k = 0; k < W; k++) push(c);
  }
  const [a, b] = await measured((on) => { counting = on; });
  running = false;
  for (let waited = 0; outstanding > 0 && waited < 5000; waited += 20) await sleep(20);
  for (const c of conns) c.onFrame = null;
  return { W, replies, errors, p50_ms: hist.q(0.5), p99_ms: hist.q(0.99), ...span(a, b) };
}

// -- relay: rooms of two, offers with `to` the other peer, open loop at stepped rates ----------
function sdp(bytes) {
  const line = 'a=candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0\r\n';
  return ('v=0\r\n' + line.repeat(Math.ceil(bytes / line.length))).slice(0, bytes);
}

async function relay() {
  const rooms = Number(A.rooms);
  const body = JSON.stringify(sdp(Number(A['sdp-bytes'])));
  const conns = await pool(rooms * 2, 50, async (i) => {
    const room = Math.floor(i / 2);
    const c = await connect(`r${room}${i % 2 ? 'b' : 'a'}-${NONCE}`);
    c.peer = `r${room}${i % 2 ? 'a' : 'b'}-${NONCE}`;
    return c;
  });
  // Both peers of a room are members before either sends: `to` names a present member.
  await pool(rooms, 50, async (r) => {
    const topic = `room:${randomUUID()}`;
    for (const c of [conns[2 * r], conns[2 * r + 1]]) {
      c.topic = topic;
      await c.call('1', topic, 'phx_join');
    }
  });
  for (const c of conns) {
    c.head = `","${c.topic}","offer",{"to":"${c.peer}","sdp":${body},"bench_t":`;
  }
  await sleep(500);
  const steps = [];
  const p99Limit = Number(A['p99-ms']);
  const minDelivered = Number(A['min-delivered']);
  for (const rate of A.rates.split(',').map(Number)) {
    const step = await relayStep(conns, rate);
    step.pass = step.p99_ms !== null && step.p99_ms < p99Limit && step.delivered_frac >= minDelivered;
    steps.push(step);
    if (!step.pass) break; // past saturation: higher steps only queue more
    await sleep(500);
  }
  await closeAll(conns);
  return { workload: 'relay', rooms, steps };
}

async function relayStep(conns, rate) {
  const hist = new Hist();
  const lag = new Hist();
  let winStart = Infinity;
  let winEnd = Infinity;
  let received = 0;
  let errors = 0;
  for (const c of conns) {
    c.onFrame = (data) => {
      const sent = stampOf(data);
      if (sent < 0) {
        if (data.includes(ERROR)) errors++;
        return; // a push reply (the gateway answers each offer) or presence
      }
      if (sent >= winStart && sent < winEnd) {
        received++;
        hist.add(now() - sent);
      }
    };
  }
  const perMs = rate / 1000;
  const t0 = now();
  const warmEnd = t0 + Number(A.warmup) * 1000;
  const stop = warmEnd + Number(A.duration) * 1000;
  let sent = 0;
  let sentInWindow = 0;
  let next = 0;
  let a = null;
  // Each tick sends what the schedule owes by now, so a late timer or a slow tick is caught up
  // rather than lowering the offered rate; how late shows as the send lag.
  for (let t = now(); t < stop; t = now()) {
    if (a === null && t >= warmEnd) {
      a = mark();
      winStart = a.t;
    }
    const due = Math.floor((t - t0) * perMs);
    while (sent < due) {
      const c = conns[next];
      next = next + 1 === conns.length ? 0 : next + 1;
      const ts = now();
      c.ws.send(`["1","${++c.ref}${c.head}${ts.toFixed(3)}}]`);
      lag.add(ts - (t0 + sent / perMs));
      sent++;
      if (ts >= winStart) sentInWindow++;
    }
    await sleep(1);
  }
  const b = mark();
  winEnd = b.t;
  // Late deliveries of the window still count, until the drain ends.
  const drainEnd = now() + Number(A.drain) * 1000;
  while (received < sentInWindow && now() < drainEnd) await sleep(20);
  for (const c of conns) c.onFrame = null;
  const window = span(a, b);
  return {
    offered: rate,
    sent: sentInWindow,
    received,
    errors,
    delivered_frac: received / (rate * window.wall_s),
    p50_ms: hist.q(0.5),
    p99_ms: hist.q(0.99),
    send_lag_p99_ms: lag.q(0.99),
    ...window,
  };
}

// -- churn: connect, join a new room, leave, close; N loops at once ----------------------------
async function churn() {
  const loops = Number(A.loops);
  const hist = new Hist();
  let running = true;
  let counting = false;
  let cycles = 0;
  let errors = 0;
  let seq = 0;
  const firstErrors = new Set();
  const loop = async (k) => {
    while (running) {
      const started = now();
      let c = null;
      try {
        c = await connect(`churn-${NONCE}-${k}-${seq++}`);
        const topic = `room:${randomUUID()}`;
        await c.call('1', topic, 'phx_join');
        await c.call('1', topic, 'phx_leave');
        await c.close();
        if (counting) {
          cycles++;
          hist.add(now() - started);
        }
      } catch (err) {
        errors++;
        if (firstErrors.size < 3) firstErrors.add(String(err.message || err));
        if (c) c.ws.terminate();
        await sleep(10);
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, (_, k) => loop(k)));
  const [a, b] = await measured((on) => { counting = on; });
  running = false;
  await done;
  return {
    workload: 'churn',
    loops,
    cycles,
    errors,
    first_errors: [...firstErrors],
    p50_ms: hist.q(0.5),
    p99_ms: hist.q(0.99),
    ...span(a, b),
  };
}

const WORKLOADS = { echo, relay, churn };
if (!WORKLOADS[A.workload]) throw new Error(`unknown workload ${A.workload}`);
const result = await WORKLOADS[A.workload]();
// Exit rather than wait for the event loop to empty: a socket the server has not finished
// closing must not hold the figures back.
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
