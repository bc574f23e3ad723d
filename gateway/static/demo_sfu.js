// The demo's SFU room (`/demo?media=sfu`): the front-end code of docs/rooms.md ("Rooms through
// an SFU"). The page sends its camera once, to the gateway's Janus VideoRoom (`offer` to
// "sfu"), and answers the offer "sfu" makes for each other member's streams. The gateway
// ends every handle of a channel that ends, so a rejoin (phoenix.js after a reconnect) closes
// what the page had and publishes afresh; the offers for the current publishers follow.

export function sfuCall({ channel, status, showVideo, removeVideo, iceServers, onState }) {
  let publisher = null // my RTCPeerConnection to the SFU
  let stream = null // the camera, once granted
  let joined = false
  const subscriptions = new Map() // publisher user id -> RTCPeerConnection from the SFU

  // A push the gateway's rate limit refused (a burst of candidates spends the same bucket) is
  // tried again after a pause, a few times (docs/wire.md: the reply to a push over its rate).
  const ask = (event, payload, tries = 5) => new Promise((resolve, reject) =>
    channel.push(event, payload).receive("ok", resolve)
      .receive("error", (err) => (err?.reason === "rate_limited" && tries > 1
        ? setTimeout(() => ask(event, payload, tries - 1).then(resolve, reject), 500)
        : reject(err)))
      .receive("timeout", () => reject({ reason: "timeout" })))
  const trickle = (pc, extra) => {
    pc.onicecandidate = ({ candidate }) => {
      const init = candidate ? candidate.toJSON() : { candidate: "", sdpMid: null, sdpMLineIndex: null }
      channel.push("ice-candidate", { ...init, ...extra, to: "sfu" })
    }
  }

  async function publish() {
    publisher?.close()
    publisher = null
    if (!stream) return // no camera (yet): receive only
    const pc = (publisher = new RTCPeerConnection({ iceServers: iceServers() }))
    pc.onconnectionstatechange = () => onState(pc.connectionState)
    for (const track of stream.getTracks()) pc.addTrack(track, stream)
    trickle(pc, {})
    await pc.setLocalDescription()
    await ask("offer", { sdp: pc.localDescription.sdp, to: "sfu" })
  }

  function publishNow() {
    publish().catch((err) => status(`publish refused: ${JSON.stringify(err?.reason ?? String(err))}`))
  }

  async function subscribe({ publisher: feed, type, sdp }) {
    subscriptions.get(feed)?.close() // a republish: the old subscription is stale
    const pc = new RTCPeerConnection({ iceServers: iceServers() })
    subscriptions.set(feed, pc)
    trickle(pc, { publisher: feed })
    pc.ontrack = ({ track, streams }) => {
      if (track.kind === "video") showVideo(feed, streams[0] ?? new MediaStream([track]))
    }
    await pc.setRemoteDescription({ type, sdp })
    await pc.setLocalDescription()
    await ask("answer", { sdp: pc.localDescription.sdp, to: "sfu", publisher: feed })
  }

  function drop(feed) {
    subscriptions.get(feed)?.close()
    subscriptions.delete(feed)
    removeVideo(feed)
  }

  function closeAll() {
    for (const feed of [...subscriptions.keys()]) drop(feed)
    publisher?.close()
    publisher = null
  }

  return {
    // Every join reply: a first join publishes; a rejoin's old handles are gone at the gateway.
    joined(granted) {
      joined = true
      stream = granted ?? stream
      closeAll()
      publishNow()
    },
    // The camera came after the join: publish it now (before the join, `joined` does).
    useCamera(granted) {
      stream = granted
      if (joined && !publisher) publishNow()
    },
    // Events from "sfu" (and `unpublished`, `sfu-ended`); false when not the SFU's.
    handle(event, payload) {
      if (event === "unpublished") {
        drop(payload.from)
      } else if (event === "sfu-ended") {
        status(`media session ended (${payload.reason}): publishing again`)
        closeAll()
        setTimeout(publishNow, 1000)
      } else if (payload.from !== "sfu") {
        return false
      } else if (event === "answer") {
        publisher?.setRemoteDescription({ type: payload.type, sdp: payload.sdp })
          .catch((err) => status(`answer: ${err}`))
      } else if (event === "offer") {
        subscribe(payload).catch((err) => status(`subscribe ${payload.publisher}: ${err?.reason ?? err}`))
      } else if (event === "ice-candidate") {
        const pc = payload.publisher ? subscriptions.get(payload.publisher) : publisher
        const { candidate, sdpMid, sdpMLineIndex } = payload
        pc?.addIceCandidate(candidate ? { candidate, sdpMid, sdpMLineIndex } : null).catch(() => {})
      }
      return true
    },
    // For tests and the curious: each subscription's state.
    peers: () => [...subscriptions].map(([id, pc]) => ({ id, connection: pc.connectionState })),
    connections: () => [...(publisher ? [["me", publisher]] : []), ...subscriptions],
  }
}
