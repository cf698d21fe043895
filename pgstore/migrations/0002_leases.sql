-- rswebhooks schema 2: leases move to a table of their own, and one call
-- leases a batch of deliveries.
--
-- A lease used to be two columns of its delivery, indexed for the
-- per-webhook count, so taking and ending one each wrote a new version of
-- the delivery's row (body included) and an entry in every index of
-- deliveries. A lease is now a small row here, inserted by the lease and
-- deleted by Complete or Release; only deliveries in flight have one (an
-- expired row counts as no lease and is overwritten or deleted).
CREATE TABLE leases (
    delivery_id text PRIMARY KEY,
    webhook_id  text NOT NULL,
    holder      text NOT NULL,
    until       timestamptz NOT NULL
);
CREATE INDEX leases_webhook ON leases (webhook_id, until);

INSERT INTO leases (delivery_id, webhook_id, holder, until)
SELECT id, webhook_id, lease_holder, lease_until FROM deliveries
 WHERE lease_holder IS NOT NULL AND lease_until IS NOT NULL;
-- The columns stay (unused) so a node of the previous release still
-- running during an upgrade fails no statement; its leases go through
-- rswebhooks_lease below, so it still never sends a delivery another node
-- holds.
UPDATE deliveries SET lease_holder = NULL, lease_until = NULL WHERE lease_holder IS NOT NULL OR lease_until IS NOT NULL;
DROP INDEX deliveries_leased;

-- rswebhooks_lease_many leases deliveries p_ids[i] for p_holders[i] until
-- p_untils[i], as of p_nows[i], with the per-webhook limit p_pers[i], in
-- one transaction, as if leased one after the other in array order; one
-- row per request: ord (1-based), result ('ok' with the body, 'absent',
-- 'locked', 'state', 'due', 'leased' or 'busy').
--
-- The delivery rows are locked first, with FOR UPDATE SKIP LOCKED (a row
-- another transaction is leasing or completing right now is refused as
-- 'locked', never waited for); then the transaction advisory lock of each
-- webhook involved, in a fixed order (so two batches cannot deadlock), under
-- which the unexpired leases of the webhook on every node are counted, so
-- two nodes cannot both take the last slot.
CREATE FUNCTION rswebhooks_lease_many(p_ids text[], p_nows timestamptz[], p_holders text[], p_untils timestamptz[], p_pers integer[])
RETURNS TABLE (ord integer, result text, body bytea)
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
        IF NOT (p_ids[i] = ANY (locked)) THEN
            IF EXISTS (SELECT 1 FROM deliveries d WHERE d.id = p_ids[i]) THEN
                ord := i; result := 'locked'; body := NULL; RETURN NEXT;
            ELSE
                ord := i; result := 'absent'; body := NULL; RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        SELECT * INTO r FROM deliveries d WHERE d.id = p_ids[i];
        IF r.state <> 'pending' THEN
            ord := i; result := 'state'; body := NULL; RETURN NEXT; CONTINUE;
        END IF;
        IF r.next_at > p_nows[i] THEN
            ord := i; result := 'due'; body := NULL; RETURN NEXT; CONTINUE;
        END IF;
        SELECT l.until INTO lease_end FROM leases l WHERE l.delivery_id = p_ids[i];
        IF FOUND AND lease_end > p_nows[i] THEN
            ord := i; result := 'leased'; body := NULL; RETURN NEXT; CONTINUE;
        END IF;
        IF p_pers[i] > 0 THEN
            SELECT count(*) INTO n FROM leases l
             WHERE l.webhook_id = r.webhook_id AND l.until > p_nows[i] AND l.delivery_id <> p_ids[i];
            IF n >= p_pers[i] THEN
                ord := i; result := 'busy'; body := NULL; RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        INSERT INTO leases (delivery_id, webhook_id, holder, until) VALUES (p_ids[i], r.webhook_id, p_holders[i], p_untils[i])
        ON CONFLICT (delivery_id) DO UPDATE SET webhook_id = excluded.webhook_id, holder = excluded.holder, until = excluded.until;
        ord := i; result := 'ok'; body := r.body; RETURN NEXT;
    END LOOP;
END
$$;

-- The one-delivery form of schema 1, kept for nodes of that release.
CREATE OR REPLACE FUNCTION rswebhooks_lease(p_id text, p_now timestamptz, p_holder text, p_until timestamptz, p_per integer)
RETURNS TABLE (result text, body bytea)
LANGUAGE sql VOLATILE AS $$
    SELECT m.result, m.body FROM rswebhooks_lease_many(ARRAY[p_id], ARRAY[p_now], ARRAY[p_holder], ARRAY[p_until], ARRAY[p_per]) m
$$;
