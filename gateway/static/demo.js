// The demo room: phoenix.js for signaling, chat and presence; RTCPeerConnection for the call.
//
// Roles by user id: the "impolite" peer (the smaller id) makes the first offer. Later offers
// follow perfect negotiation (the W3C pattern): on a collision the polite peer (the larger id)
// rolls back and the impolite one ignores the incoming offer.
// ICE candidates that arrive before the remote description is set are buffered.
// ICE servers (STUN, TURN with short-lived credentials) come from the join reply; they are
// renewed with an `ice_servers` push before the TURN credential expires. `/demo?relay` calls
// through TURN only (iceTransportPolicy "relay"): a quick check of a TURN server's setup.
// `/demo?media=sfu` asks for an SFU room (the gateway needs --sfu-url): the media then goes
// through Janus (demo_sfu.js) and the peer connections below are not used.
import { Socket, Presence } from "/demo/phoenix.mjs"
import { sfuCall } from "/demo/demo_sfu.js"

const $ = (id) => document.getElementById(id)
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

let roomId = location.hash.slice(1).toLowerCase()
if (!UUID.test(roomId)) {
  roomId = crypto.randomUUID()
  history.replaceState(null, "", `#${roomId}`)
}
$("room-id").textContent = roomId

const query = new URLSearchParams(location.search)
const params = query.get("user") ? { token: query.get("user") } : {}
const iceTransportPolicy = query.has("relay") ? "relay" : "all"
const wantsSfu = query.get("media") === "sfu"
const socket = new Socket("/socket", { params })
socket.connect()
// The room's media is the first member's choice: the join reply says which it is.
const channel = socket.channel(`room:${roomId}`, { tracks: ["video"], ...(wantsSfu ? { media: "sfu" } : {}) })
const presence = new Presence(channel)
const peers = new Map() // user id -> {pc, dc, polite, makingOffer, ignoreOffer, pending}
let me = null
let localStream = null
let iceServers = [] // the join reply's ice_servers: none unless the gateway has STUN/TURN set
let iceRenewal = null
let sfu = null // the SFU call, when the room's media is sfu

function log(list, text) {
  const li = document.createElement("li")
  li.textContent = text
  $(list).append(li)
  li.scrollIntoView({ block: "nearest" })
}

function status(text) {
  $("status").textContent = text
  console.warn(text)
}

function send(event, payload) {
  channel.push(event, payload)
    .receive("error", (resp) => status(`${event} refused: ${JSON.stringify(resp)}`))
    .receive("timeout", () => status(`${event} timed out`))
}

function peerFor(peerId) {
  let peer = peers.get(peerId)
  if (peer && !["failed", "closed"].includes(peer.pc.connectionState)) return peer
  if (peer) peer.pc.close()
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy })
  // Negotiated out of band (same id on both sides): no glare over who creates it.
  const dc = pc.createDataChannel("demo", { negotiated: true, id: 0 })
  // `id` names this connection in its signals and `remote` the other side's, so a peer that
  // started over (its connection failed) is told from a renegotiation of the old one.
  peer = { pc, dc, id: crypto.randomUUID(), remote: null, polite: me > peerId, makingOffer: false, ignoreOffer: false, pending: [] }
  peers.set(peerId, peer)

  dc.onopen = dc.onclose = () => { $("dc-state").textContent = dc.readyState }
  dc.onmessage = ({ data }) => log("data-log", `${peerId.slice(0, 8)}: ${data}`)
  pc.onconnectionstatechange = () => {
    $("conn-state").textContent = pc.connectionState
    if (pc.connectionState !== "failed" || peers.get(peerId)?.pc !== pc) return
    // Start over: the impolite side offers a new connection, the polite side waits for it.
    pc.close()
    peers.delete(peerId)
    if (!peer.polite) peerFor(peerId)
  }
  pc.onicecandidate = ({ candidate }) => {
    const init = candidate ? candidate.toJSON() : { candidate: "", sdpMid: null, sdpMLineIndex: null }
    send("ice-candidate", { ...init, to: peerId, pc: peer.id })
  }
  pc.onnegotiationneeded = async () => {
    // The first offer is the impolite peer's: two simultaneous first offers (both pages add
    // their camera at once) are glare that a rollback in the middle of ICE gathering handles
    // badly. The polite peer's tracks join through its answer; later changes negotiate freely.
    if (peer.polite && !pc.remoteDescription) return
    try {
      peer.makingOffer = true
      await pc.setLocalDescription()
      send("offer", { sdp: pc.localDescription.sdp, type: "offer", to: peerId, pc: peer.id })
    } catch (err) {
      status(`offer failed: ${err}`)
    } finally {
      peer.makingOffer = false
    }
  }
  pc.ontrack = ({ streams: [stream] }) => showVideo(peerId, stream)
  if (localStream) for (const track of localStream.getTracks()) pc.addTrack(track, localStream)
  return peer
}

function showVideo(peerId, stream) {
  let video = document.querySelector(`video[data-peer="${peerId}"]`)
  if (!video) {
    video = Object.assign(document.createElement("video"), { autoplay: true, playsInline: true, muted: true })
    video.dataset.peer = peerId
    $("videos").append(video)
  }
  video.srcObject = stream
}

function removeVideo(peerId) {
  document.querySelector(`video[data-peer="${peerId}"]`)?.remove()
}

async function onDescription(payload) {
  let peer = peerFor(payload.from)
  if (payload.type === "offer" && payload.pc && peer.remote && payload.pc !== peer.remote) {
    peer.pc.close() // the other side started a new connection: follow it
    peers.delete(payload.from)
    peer = peerFor(payload.from)
  }
  if (payload.pc) peer.remote = payload.pc
  const { pc } = peer
  const description = new RTCSessionDescription({ type: payload.type, sdp: payload.sdp })
  const collision = description.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable")
  peer.ignoreOffer = !peer.polite && collision
  if (peer.ignoreOffer) return
  await pc.setRemoteDescription(description) // the polite side rolls back implicitly
  for (const candidate of peer.pending.splice(0)) await addCandidate(peer, candidate)
  if (description.type === "offer") {
    await pc.setLocalDescription()
    send("answer", { sdp: pc.localDescription.sdp, type: "answer", to: payload.from, pc: peer.id })
  }
}

async function addCandidate(peer, { candidate, sdpMid, sdpMLineIndex, usernameFragment }) {
  if (candidate === "") return // end of candidates: nothing to add
  try {
    await peer.pc.addIceCandidate({ candidate, sdpMid, sdpMLineIndex, usernameFragment })
  } catch (err) {
    if (!peer.ignoreOffer) status(`candidate refused: ${err}`)
  }
}

async function onCandidate(payload) {
  const peer = peerFor(payload.from)
  if (payload.pc && peer.remote && payload.pc !== peer.remote) return // an old connection's
  // Before the remote description the candidate cannot be added yet: keep it for later.
  if (!peer.pc.remoteDescription) peer.pending.push(payload)
  else await addCandidate(peer, payload)
}

// In an SFU room the SFU's events go to the SFU call; members' own signals stay peer to peer.
channel.on("offer", (p) => sfu?.handle("offer", p) || onDescription(p).catch((err) => status(`offer: ${err}`)))
channel.on("answer", (p) => sfu?.handle("answer", p) || onDescription(p).catch((err) => status(`answer: ${err}`)))
channel.on("ice-candidate", (p) => sfu?.handle("ice-candidate", p) || onCandidate(p).catch((err) => status(`candidate: ${err}`)))
channel.on("peer-ready", ({ from }) => { if (from !== me && !sfu) peerFor(from) })
channel.on("unpublished", (p) => sfu?.handle("unpublished", p))
channel.on("sfu-ended", (p) => sfu?.handle("sfu-ended", p))
channel.on("undeliverable", ({ event, to }) => status(`${event} to ${to} could not be delivered`))
channel.on("new_msg", ({ from, body }) => log("chat", `${from === me ? "me" : from.slice(0, 8)}: ${body}`))

presence.onSync(() => {
  $("participants").replaceChildren(...presence.list((id, { metas }) => {
    const li = document.createElement("li")
    li.textContent = `${id}${metas.length > 1 ? ` (${metas.length} tabs)` : ""}`
    li.dataset.user = id
    if (id === me) li.className = "me"
    return li
  }))
})

$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault()
  const body = $("chat-input").value.trim()
  if (body) send("new_msg", { body })
  $("chat-input").value = ""
})

function sendData(text) {
  let sent = 0
  for (const { dc } of peers.values()) if (dc.readyState === "open") { dc.send(text); sent++ }
  if (sent) log("data-log", `me: ${text}`)
  return sent
}

$("data-form").addEventListener("submit", (e) => {
  e.preventDefault()
  sendData($("data-input").value)
  $("data-input").value = ""
})

function useCamera(stream) {
  localStream = stream
  $("local-video").srcObject = stream
  $("media-state").textContent = "on"
  // Peers met before the camera was granted get its tracks now (renegotiated as any change).
  for (const { pc } of peers.values()) for (const track of stream.getTracks()) pc.addTrack(track, stream)
  sfu?.useCamera(stream)
}

function connections() {
  return sfu ? sfu.connections() : [...peers].map(([id, { pc }]) => [id, pc])
}

// A TURN username is `<expiry unix seconds>:<user id>`: renew a minute before that (an ICE
// restart or a new peer after it would be refused), and hand the new list to open calls too.
function renewIceServers(servers) {
  iceServers = servers ?? []
  for (const [, pc] of connections()) {
    if (pc.signalingState !== "closed") pc.setConfiguration({ ...pc.getConfiguration(), iceServers })
  }
  clearTimeout(iceRenewal) // a rejoin (after a reconnect) brings a fresh list and a new timer
  const expiry = Math.min(...iceServers.filter((s) => s.username).map((s) => Number(s.username.split(":")[0])))
  if (!Number.isFinite(expiry)) return
  iceRenewal = setTimeout(() => {
    channel.push("ice_servers", {})
      .receive("ok", ({ ice_servers }) => renewIceServers(ice_servers))
      .receive("error", (resp) => status(`ice_servers refused: ${JSON.stringify(resp)}`))
  }, Math.max(5_000, expiry * 1000 - Date.now() - 60_000))
}

function start() {
  // Join at once: chat, participants and the data channel work whatever the camera prompt says.
  channel.join()
    .receive("ok", ({ user_id, ice_servers, media }) => {
      me = user_id
      $("user-id").textContent = me
      renewIceServers(ice_servers)
      $("media").textContent = media ?? "mesh"
      $("sfu-link").hidden = media === undefined || wantsSfu // the gateway has no SFU, or in use
      if (media === "sfu") {
        sfu ??= sfuCall({ channel, status, showVideo, removeVideo, iceServers: () => iceServers,
                          onState: (state) => { $("conn-state").textContent = state } })
        sfu.joined(localStream) // also on a rejoin: the gateway ended the old handles
      }
    })
    .receive("error", (resp) => status(`join refused: ${JSON.stringify(resp)}`))
  navigator.mediaDevices.getUserMedia({ video: true, audio: false }).then(useCamera, (err) => {
    $("media-state").textContent = `refused (${err.name}): chat and data channel only`
  })
}

// For tests and the curious: the call's state from the console.
window.demo = {
  get me() { return me },
  roomId,
  sendData,
  get media() { return sfu ? "sfu" : "mesh" },
  peers: () => sfu ? sfu.peers()
    : [...peers].map(([id, p]) => ({ id, connection: p.pc.connectionState, channel: p.dc.readyState })),
  iceServers: () => iceServers,
  // The candidate types (host, srflx, relay) of each call's selected pair.
  routes: () => Promise.all(connections().map(async ([id, pc]) => {
    const stats = await pc.getStats()
    const pairs = [...stats.values()].filter((s) => s.type === "transport" && s.selectedCandidatePairId)
      .map((t) => stats.get(t.selectedCandidatePairId))
    return pairs.map((p) => ({ id, local: stats.get(p.localCandidateId).candidateType,
                               remote: stats.get(p.remoteCandidateId).candidateType }))
  })).then((lists) => lists.flat()),
}
start()
