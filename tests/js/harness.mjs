// Scriptable driver of the official phoenix client under Node 20: JSON commands on stdin, one JSON event per line on stdout.
//
// Usage:
//   node tests/js/harness.mjs --url ws://127.0.0.1:PORT/socket [--phoenix 1.8.16|1.8.0]
//     [--transport websocket|longpoll] [--params '{"token":"u1"}'] [--auth-token T]
//     [--fast-reconnect] [--reconnect-ms N] [--rejoin-ms N] [--timeout MS] [--heartbeat-ms MS]
//     [--longpoller-timeout MS] [--vsn 2.0.0] [--no-connect] [--socket-messages] [--log]
//
// Commands (one JSON object per stdin line); "id" names a Channel object chosen by the test:
//   {"op":"join","id":"c1","topic":"room:x","params":{},"timeout":MS?}
//   {"op":"set_params","id":"c1","params":{}}        params sent on the next (re)join
//   {"op":"push","id":"c1","event":"e","payload":{},"ref":N?,"timeout":MS?}
//   {"op":"push_binary","id":"c1","event":"e","bytes_hex":"0102","ref":N?,"timeout":MS?}
//   {"op":"leave","id":"c1"}
//   {"op":"presence","id":"c1"}
//   {"op":"state"}  {"op":"disconnect","code":N?,"reason":S?}  {"op":"connect"}  {"op":"exit"}
//
// Events (every line also carries "t", milliseconds since the harness started):
//   {"ev":"ready","phoenix":"1.8.16","transport":"websocket"}
//   {"ev":"open"} {"ev":"close","code":N,"reason":S,"was_clean":B} {"ev":"error","message":S}
//   {"ev":"join_reply","id":"c1","status":"ok"|"error"|"timeout","response":{}}  (again on each rejoin)
//   {"ev":"push_reply","id":"c1","ref":N,"wire_ref":"7","status":"ok"|"error"|"timeout","response":{}}
//   {"ev":"leave_reply","id":"c1","status":"ok"|"timeout"}
//   {"ev":"message","id":"c1","event":"e","payload":{},"ref":R,"join_ref":J}
//   {"ev":"presence","id":"c1","list":[{"key":K,"metas":[...]}]}      answer to the presence op
//   {"ev":"presence_sync","id":"c1","list":[...]}                         after every state/diff
//   {"ev":"channel_error","id":"c1","reason":{}} {"ev":"channel_close","id":"c1"}
//   {"ev":"socket_message","topic":T,"event":E,"payload":P,"ref":R,"join_ref":J}  (--socket-messages)
//   {"ev":"state","socket":"open","channels":{"c1":"joined"}}  {"ev":"disconnected"}  (disconnect done)
//   {"ev":"harness_error","message":S}   a command the harness could not carry out
// Binary payloads and responses (ArrayBuffer) are written as {"bytes_hex":"..."}.

import { createInterface } from "node:readline"
import { readFileSync } from "node:fs"
import { format, parseArgs } from "node:util"
import WebSocket from "ws"

const PACKAGES = { "1.8.16": "phoenix", "1.8.0": "phoenix180" }
const LIFECYCLE_EVENTS = new Set(["phx_reply", "phx_join", "phx_leave", "phx_error", "phx_close"])
const started = performance.now()

// stdout carries only event lines: phoenix.js itself console.logs (e.g. "failed to parse JSON
// response"), so console output goes to stderr. A closed stdout means the test is gone.
for (const level of ["log", "info", "warn", "error", "debug"]) {
  console[level] = (...parts) => process.stderr.write(format(...parts) + "\n")
}
process.stdout.on("error", () => process.exit(0))

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    phoenix: { type: "string", default: "1.8.16" },
    transport: { type: "string", default: "websocket" },
    params: { type: "string", default: "{}" },
    "auth-token": { type: "string" },
    "fast-reconnect": { type: "boolean", default: false },
    "reconnect-ms": { type: "string" },
    "rejoin-ms": { type: "string" },
    timeout: { type: "string" },
    "heartbeat-ms": { type: "string" },
    "longpoller-timeout": { type: "string" },
    vsn: { type: "string" },
    "no-connect": { type: "boolean", default: false },
    "socket-messages": { type: "boolean", default: false },
    log: { type: "boolean", default: false },
  },
})

function toJSON(_key, value) {
  if (value instanceof ArrayBuffer) return { bytes_hex: Buffer.from(value).toString("hex") }
  if (ArrayBuffer.isView(value)) {
    return { bytes_hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") }
  }
  return value
}

function emit(event) {
  const t = Math.round((performance.now() - started) * 10) / 10
  process.stdout.write(JSON.stringify({ ...event, t }, toJSON) + "\n")
}

function die(message) {
  process.stderr.write(`harness: ${message}\n`)
  process.exit(2)
}

function intArg(name) {
  const raw = args[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) die(`--${name} must be a non-negative integer, got ${raw}`)
  return n
}

if (!args.url) die("--url is required")
const pkgName = PACKAGES[args.phoenix]
if (!pkgName) die(`--phoenix must be one of ${Object.keys(PACKAGES).join(", ")}`)
if (!["websocket", "longpoll"].includes(args.transport)) die("--transport must be websocket or longpoll")

// Load the requested copy and check that it is the version asked for.
const pkgJsonUrl = new URL(`./node_modules/${pkgName}/package.json`, import.meta.url)
const loadedVersion = JSON.parse(readFileSync(pkgJsonUrl, "utf8")).version
if (loadedVersion !== args.phoenix) die(`${pkgName} is ${loadedVersion}, expected ${args.phoenix}`)
const { Socket, LongPoll, Presence } = await import(pkgName)

let socketParams
try {
  socketParams = JSON.parse(args.params)
} catch (e) {
  die(`--params is not JSON: ${e.message}`)
}

const reconnectMs = intArg("reconnect-ms") ?? (args["fast-reconnect"] ? 50 : undefined)
const rejoinMs = intArg("rejoin-ms") ?? (args["fast-reconnect"] ? 50 : undefined)
const opts = {
  params: socketParams,
  // Node 20 has no global WebSocket: without `ws` the client would silently use long-poll.
  transport: args.transport === "websocket" ? WebSocket : LongPoll,
}
if (args["auth-token"] !== undefined) opts.authToken = args["auth-token"]
if (reconnectMs !== undefined) opts.reconnectAfterMs = () => reconnectMs
if (rejoinMs !== undefined) opts.rejoinAfterMs = () => rejoinMs
if (intArg("timeout") !== undefined) opts.timeout = intArg("timeout")
if (intArg("heartbeat-ms") !== undefined) opts.heartbeatIntervalMs = intArg("heartbeat-ms")
if (intArg("longpoller-timeout") !== undefined) opts.longpollerTimeout = intArg("longpoller-timeout")
if (args.vsn !== undefined) opts.vsn = args.vsn
if (args.log) {
  opts.logger = (kind, msg, data) => process.stderr.write(`${kind}: ${msg} ${JSON.stringify(data, toJSON)}\n`)
}

const socket = new Socket(args.url, opts)
socket.onOpen(() => emit({ ev: "open" }))
socket.onClose((event) => {
  emit({ ev: "close", code: event?.code ?? null, reason: event?.reason ?? null, was_clean: event?.wasClean ?? null })
})
socket.onError((error) => {
  emit({ ev: "error", message: error?.message ?? (typeof error === "number" ? String(error) : error?.type ?? String(error)) })
})
if (args["socket-messages"]) {
  socket.onMessage(({ topic, event, payload, ref, join_ref }) => {
    emit({ ev: "socket_message", topic, event, payload, ref: ref ?? null, join_ref: join_ref ?? null })
  })
}

// id -> {channel, presence, params}
const channels = new Map()
let autoRef = 0

function presenceList(presence) {
  return presence.list((key, { metas }) => ({ key, metas }))
}

function lookup(cmd) {
  const entry = channels.get(cmd.id)
  if (!entry) throw new Error(`no channel with id ${JSON.stringify(cmd.id)}`)
  return entry
}

function hexToArrayBuffer(hex) {
  if (typeof hex !== "string" || !/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error("bytes_hex must be an even-length hex string")
  return Uint8Array.from(Buffer.from(hex, "hex")).buffer
}

function watchPush(push, id, ref, kind) {
  for (const status of ["ok", "error", "timeout"]) {
    push.receive(status, (response) => {
      if (kind === "push") emit({ ev: "push_reply", id, ref, wire_ref: push.ref ?? null, status, response: response ?? null })
      else emit({ ev: kind, id, status, response: response ?? null })
    })
  }
}

function join(cmd) {
  if (typeof cmd.id !== "string") throw new Error("join needs a string id")
  if (channels.has(cmd.id)) throw new Error(`channel id ${cmd.id} is already used`)
  if (typeof cmd.topic !== "string") throw new Error("join needs a string topic")
  const entry = { params: cmd.params ?? {} }
  // A function, so that set_params applies to rejoins (phoenix.js re-evaluates it each time).
  const channel = socket.channel(cmd.topic, () => entry.params)
  entry.channel = channel
  entry.presence = new Presence(channel)
  entry.presence.onSync(() => emit({ ev: "presence_sync", id: cmd.id, list: presenceList(entry.presence) }))
  channel.onMessage = (event, payload, ref, joinRef) => {
    if (!LIFECYCLE_EVENTS.has(event) && !event.startsWith("chan_reply_")) {
      emit({ ev: "message", id: cmd.id, event, payload: payload ?? null, ref: ref ?? null, join_ref: joinRef ?? null })
    }
    return payload
  }
  channel.onError((reason) => emit({ ev: "channel_error", id: cmd.id, reason: reason ?? null }))
  channel.onClose(() => emit({ ev: "channel_close", id: cmd.id }))
  channels.set(cmd.id, entry)
  watchPush(cmd.timeout === undefined ? channel.join() : channel.join(cmd.timeout), cmd.id, null, "join_reply")
}

function push(cmd, payload) {
  const { channel } = lookup(cmd)
  if (typeof cmd.event !== "string") throw new Error("push needs a string event")
  const ref = cmd.ref ?? ++autoRef
  const p = cmd.timeout === undefined ? channel.push(cmd.event, payload) : channel.push(cmd.event, payload, cmd.timeout)
  watchPush(p, cmd.id, ref, "push")
}

const handlers = {
  join,
  set_params: (cmd) => { lookup(cmd).params = cmd.params ?? {} },
  push: (cmd) => push(cmd, cmd.payload ?? {}),
  push_binary: (cmd) => push(cmd, hexToArrayBuffer(cmd.bytes_hex)),
  leave: (cmd) => {
    const { channel } = lookup(cmd)
    const leavePush = channel.leave()
    for (const status of ["ok", "timeout"]) leavePush.receive(status, () => emit({ ev: "leave_reply", id: cmd.id, status }))
  },
  presence: (cmd) => emit({ ev: "presence", id: cmd.id, list: presenceList(lookup(cmd).presence) }),
  state: () => {
    const states = {}
    for (const [id, { channel }] of channels) states[id] = channel.state
    emit({ ev: "state", socket: socket.connectionState(), channels: states })
  },
  disconnect: (cmd) => socket.disconnect(() => emit({ ev: "disconnected" }), cmd.code, cmd.reason),
  connect: () => socket.connect(),
  exit: () => process.exit(0),
}

emit({ ev: "ready", phoenix: loadedVersion, transport: args.transport })
if (!args["no-connect"]) socket.connect()

const input = createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on("line", (line) => {
  if (line.trim() === "") return
  let cmd
  try {
    cmd = JSON.parse(line)
    const handler = handlers[cmd?.op]
    if (!handler) throw new Error(`unknown op ${JSON.stringify(cmd?.op)}`)
    handler(cmd)
  } catch (e) {
    emit({ ev: "harness_error", message: e.message, command: line })
  }
})
input.on("close", () => process.exit(0))
