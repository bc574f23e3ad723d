-- Signaling sessions, participants, signaling events and chat messages.
-- A session is one occupancy of a room: from its first join until it empties.

CREATE TABLE gateway_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id      text        NOT NULL,
    created_at   timestamptz NOT NULL,
    emptied_at   timestamptz,
    members      integer     NOT NULL DEFAULT 0,
    peak_members integer     NOT NULL DEFAULT 0
);
-- At most one open session per room: every node's joins land in the same one.
CREATE UNIQUE INDEX gateway_sessions_open ON gateway_sessions (room_id) WHERE emptied_at IS NULL;
CREATE INDEX gateway_sessions_room ON gateway_sessions (room_id, created_at DESC, id DESC);
CREATE INDEX gateway_sessions_emptied ON gateway_sessions (emptied_at) WHERE emptied_at IS NOT NULL;

CREATE SEQUENCE gateway_join_order;

CREATE TABLE gateway_participants (
    session_id      bigint      NOT NULL REFERENCES gateway_sessions (id) ON DELETE CASCADE,
    user_id         text        NOT NULL,
    first_joined_at timestamptz NOT NULL,
    joined_at       timestamptz NOT NULL,  -- the latest join
    left_at         timestamptz,           -- NULL while present
    joins           integer     NOT NULL DEFAULT 1,
    tracks          text[],
    join_order      bigint      NOT NULL DEFAULT nextval('gateway_join_order'),
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX gateway_participants_user
    ON gateway_participants (user_id, first_joined_at DESC, session_id DESC);

-- Each stay of a participant: one row per join that made them present, closed by their leave.
CREATE TABLE gateway_attendance (
    session_id bigint      NOT NULL REFERENCES gateway_sessions (id) ON DELETE CASCADE,
    user_id    text        NOT NULL,
    joined_at  timestamptz NOT NULL,
    left_at    timestamptz,
    tracks     text[]
);
CREATE INDEX gateway_attendance_session ON gateway_attendance (session_id, user_id, joined_at);

-- Offers, answers and runs of candidates (one row, `count` of them). Ids are made by the
-- writer, so a batch written twice (a commit whose answer was lost) adds nothing.
CREATE TABLE gateway_events (
    id         uuid        PRIMARY KEY,
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    room_id    text        NOT NULL,
    kind       text        NOT NULL,
    sender     text        NOT NULL,
    recipient  text        NOT NULL,
    started_at timestamptz NOT NULL,
    at         timestamptz NOT NULL,  -- the latest candidate of a run
    count      integer     NOT NULL DEFAULT 1
);
CREATE INDEX gateway_events_room ON gateway_events (room_id, seq);
CREATE INDEX gateway_events_at ON gateway_events (at);

CREATE TABLE gateway_messages (
    id      uuid        PRIMARY KEY,
    room_id text        NOT NULL,
    sender  text        NOT NULL,
    body    text,
    at      timestamptz NOT NULL,
    message text        NOT NULL  -- the new_msg payload as relayed (JSON)
);
CREATE INDEX gateway_messages_room ON gateway_messages (room_id, at DESC, id DESC);
CREATE INDEX gateway_messages_at ON gateway_messages (at);

-- Batches already written: a retried batch is recognised and skipped.
CREATE TABLE gateway_batches (
    id uuid        PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_batches_at ON gateway_batches (at);

-- A join: open the room's session if none is open, then count the participant in.
CREATE FUNCTION gateway_joined(p_room text, p_user text, p_at timestamptz, p_tracks text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid bigint;
    arrived boolean;
BEGIN
    INSERT INTO gateway_sessions (room_id, created_at) VALUES (p_room, p_at)
        ON CONFLICT (room_id) WHERE emptied_at IS NULL DO NOTHING;
    SELECT id INTO sid FROM gateway_sessions
        WHERE room_id = p_room AND emptied_at IS NULL FOR UPDATE;
    INSERT INTO gateway_participants (session_id, user_id, first_joined_at, joined_at, tracks)
        VALUES (sid, p_user, p_at, p_at, p_tracks) ON CONFLICT DO NOTHING;
    IF FOUND THEN
        arrived := true;
    ELSE
        -- Known: back after leaving (arrived), or another tab of a present member.
        SELECT left_at IS NOT NULL INTO arrived FROM gateway_participants
            WHERE session_id = sid AND user_id = p_user FOR UPDATE;
        UPDATE gateway_participants
            SET joined_at = p_at, left_at = NULL, joins = joins + 1,
                tracks = COALESCE(p_tracks, tracks), join_order = nextval('gateway_join_order')
            WHERE session_id = sid AND user_id = p_user;
    END IF;
    IF arrived THEN
        UPDATE gateway_sessions
            SET members = members + 1, peak_members = GREATEST(peak_members, members + 1)
            WHERE id = sid;
        INSERT INTO gateway_attendance (session_id, user_id, joined_at, tracks)
            VALUES (sid, p_user, p_at, p_tracks);
    END IF;
END $$;

-- A member's last channel left; an empty room closes its session. Nodes write on their own,
-- so a leave may arrive after a later join on another node: a leave older than the latest
-- join changes nothing, and a room someone joined since is not closed.
CREATE FUNCTION gateway_left(p_room text, p_user text, p_at timestamptz, p_empty boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid bigint;
BEGIN
    SELECT id INTO sid FROM gateway_sessions
        WHERE room_id = p_room AND emptied_at IS NULL FOR UPDATE;
    IF sid IS NULL THEN
        RETURN;
    END IF;
    UPDATE gateway_participants SET left_at = p_at
        WHERE session_id = sid AND user_id = p_user AND left_at IS NULL AND joined_at <= p_at;
    IF FOUND THEN
        UPDATE gateway_sessions SET members = GREATEST(members - 1, 0) WHERE id = sid;
        UPDATE gateway_attendance SET left_at = p_at
            WHERE session_id = sid AND user_id = p_user AND left_at IS NULL;
    END IF;
    IF p_empty AND NOT EXISTS (
        SELECT 1 FROM gateway_participants
            WHERE session_id = sid AND left_at IS NULL AND joined_at > p_at
    ) THEN
        UPDATE gateway_participants SET left_at = p_at WHERE session_id = sid AND left_at IS NULL;
        UPDATE gateway_attendance SET left_at = p_at WHERE session_id = sid AND left_at IS NULL;
        UPDATE gateway_sessions SET emptied_at = p_at, members = 0 WHERE id = sid;
    END IF;
END $$;
