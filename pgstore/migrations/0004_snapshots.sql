-- rswebhooks schema 4: an event's snapshot is stored once, not in every
-- delivery row, so the writes that record attempts and move leases
-- rewrite a small row (a delivery's state), not its ~1 KB event as well.
--
-- A delivery row's record is the delivery's JSON without its event (rows
-- written before schema 4 keep theirs, event included, until their next
-- write); its event is
--   * the event's shared snapshot (snapshots, by event_id) when shared,
--   * else own_event: a JSON object whose member "Event" is the snapshot
--     ({"Event": …} for a delivery with an event of its own: pings,
--     replays; a row of schema 3 or older gets its whole former body
--     there, byte for byte, when schema 4 first rewrites its record),
--   * else (shared false, own_event null: a row of schema 3 or older not
--     rewritten since) the record itself.
-- A snapshot stays while a shared delivery refers to it (Run deletes it
-- with its last one), so a delivery keeps its event for its whole
-- retention, however long the event is kept.
--
-- No row is rewritten here (renaming a column and adding one with a
-- constant default or none touch no row); the one new index is built in
-- the migration's transaction (seconds for a few million deliveries,
-- during which writes to them wait).
-- Nodes of an older release that are still running during a rolling
-- upgrade fail their delivery statements (no column body, no function of
-- the shape they call) until they are replaced, rather than sending a
-- delivery without its event: their proxies keep storing events (the
-- events table is unchanged), and the upgraded nodes fan them out and
-- deliver them.
CREATE TABLE snapshots (
    event_id text PRIMARY KEY,
    body     bytea NOT NULL
);

ALTER TABLE deliveries RENAME COLUMN body TO record;
ALTER TABLE deliveries ADD COLUMN shared boolean NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN own_event bytea;
-- The deliveries of an event (EventDeliveries, and whether a snapshot is
-- still referred to).
CREATE INDEX deliveries_event ON deliveries (event_id);

DROP FUNCTION rswebhooks_lease(text, timestamptz, text, timestamptz, integer);
DROP FUNCTION rswebhooks_lease_many(text[], timestamptz[], text[], timestamptz[], integer[]);

-- rswebhooks_lease_many as in schema 2, answering with the delivery's
-- record (rec), own_event (own), whether it shares its event's snapshot
-- (shared) and that snapshot (snap) instead of its body.
CREATE FUNCTION rswebhooks_lease_many(p_ids text[], p_nows timestamptz[], p_holders text[], p_untils timestamptz[], p_pers integer[])
RETURNS TABLE (ord integer, result text, rec bytea, own bytea, shared boolean, snap bytea)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    locked text[];
    r deliveries%ROWTYPE;
    h integer;
    n integer;
    i integer;
    lease_end timestamptz;
BEGIN
    SELECT coalesce(array_agg(s.id), '{}') INTO locked
      FROM (SELECT d.id FROM deliveries d WHERE d.id = ANY (p_ids) FOR UPDATE SKIP LOCKED) s;
    IF EXISTS (SELECT 1 FROM unnest(p_pers) p WHERE p > 0) THEN
        FOR h IN SELECT DISTINCT hashtext(d.webhook_id) FROM deliveries d WHERE d.id = ANY (locked) ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(1920467281, h);
        END LOOP;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        ord := i; rec := NULL; own := NULL; shared := false; snap := NULL;
        IF NOT (p_ids[i] = ANY (locked)) THEN
            IF EXISTS (SELECT 1 FROM deliveries d WHERE d.id = p_ids[i]) THEN
                result := 'locked';
            ELSE
                result := 'absent';
            END IF;
            RETURN NEXT; CONTINUE;
        END IF;
        SELECT * INTO r FROM deliveries d WHERE d.id = p_ids[i];
        IF r.state <> 'pending' THEN
            result := 'state'; RETURN NEXT; CONTINUE;
        END IF;
        IF r.next_at > p_nows[i] THEN
            result := 'due'; RETURN NEXT; CONTINUE;
        END IF;
        SELECT l.until INTO lease_end FROM leases l WHERE l.delivery_id = p_ids[i];
        IF FOUND AND lease_end > p_nows[i] THEN
            result := 'leased'; RETURN NEXT; CONTINUE;
        END IF;
        IF p_pers[i] > 0 THEN
            SELECT count(*) INTO n FROM leases l
             WHERE l.webhook_id = r.webhook_id AND l.until > p_nows[i] AND l.delivery_id <> p_ids[i];
            IF n >= p_pers[i] THEN
                result := 'busy'; RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        INSERT INTO leases (delivery_id, webhook_id, holder, until) VALUES (p_ids[i], r.webhook_id, p_holders[i], p_untils[i])
        ON CONFLICT (delivery_id) DO UPDATE SET webhook_id = excluded.webhook_id, holder = excluded.holder, until = excluded.until;
        result := 'ok'; rec := r.record; own := r.own_event; shared := r.shared;
        IF r.shared THEN
            SELECT s.body INTO snap FROM snapshots s WHERE s.event_id = r.event_id;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
