-- rswebhooks schema 1. Values are the JSON of the domain types (bytea, so
-- raw JSON such as webhook Properties reads back byte for byte); the
-- columns beside them are what queries select and order by.

CREATE TABLE webhooks (
    id            text PRIMARY KEY,
    owner_id      text NOT NULL,
    created_utc   timestamptz NOT NULL,
    paused        boolean NOT NULL,
    owner_missing boolean NOT NULL,
    body          bytea NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id);

-- An event waits for fan-out (fanned false, no expiry), then expires.
CREATE TABLE events (
    id         text PRIMARY KEY,
    at         timestamptz NOT NULL,
    fanned     boolean NOT NULL DEFAULT false,
    expires_at timestamptz,
    body       bytea NOT NULL
);
CREATE INDEX events_unfanned ON events (id) WHERE NOT fanned;
CREATE INDEX events_expiry ON events (expires_at) WHERE expires_at IS NOT NULL;

-- A pending delivery is in the due queue (next_at) and never expires; a
-- leased one is in flight on lease_holder until lease_until.
CREATE TABLE deliveries (
    id           text PRIMARY KEY,
    webhook_id   text NOT NULL,
    event_id     text NOT NULL,
    state        text NOT NULL,
    next_at      timestamptz NOT NULL,
    lease_holder text,
    lease_until  timestamptz,
    expires_at   timestamptz,
    body         bytea NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_leased ON deliveries (webhook_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_expiry ON deliveries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE attempts (
    delivery_id text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    expires_at  timestamptz NOT NULL,
    body        bytea NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
CREATE INDEX attempts_expiry ON attempts (expires_at);

CREATE TABLE executions (
    id         text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX executions_expiry ON executions (expires_at);

CREATE TABLE meta (
    key        text PRIMARY KEY,
    value      bytea NOT NULL,
    expires_at timestamptz
);
CREATE INDEX meta_expiry ON meta (expires_at) WHERE expires_at IS NOT NULL;

-- rswebhooks_lease leases one delivery in one round trip. The row is
-- taken with FOR UPDATE SKIP LOCKED (a row another node is leasing right
-- now is simply refused), and the per-webhook limit is counted under a
-- transaction-scoped advisory lock on the webhook, so two nodes cannot
-- both take the last slot. Result: 'ok' (with the body), 'absent',
-- 'locked', 'state', 'due', 'leased' or 'busy'.
CREATE FUNCTION rswebhooks_lease(p_id text, p_now timestamptz, p_holder text, p_until timestamptz, p_per integer)
RETURNS TABLE (result text, body bytea)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r deliveries%ROWTYPE;
    n integer;
BEGIN
    SELECT * INTO r FROM deliveries d WHERE d.id = p_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM deliveries d WHERE d.id = p_id) THEN
            RETURN QUERY SELECT 'locked'::text, NULL::bytea;
        ELSE
            RETURN QUERY SELECT 'absent'::text, NULL::bytea;
        END IF;
        RETURN;
    END IF;
    IF r.state <> 'pending' THEN
        RETURN QUERY SELECT 'state'::text, NULL::bytea; RETURN;
    END IF;
    IF r.next_at > p_now THEN
        RETURN QUERY SELECT 'due'::text, NULL::bytea; RETURN;
    END IF;
    IF r.lease_until IS NOT NULL AND r.lease_until > p_now THEN
        RETURN QUERY SELECT 'leased'::text, NULL::bytea; RETURN;
    END IF;
    IF p_per > 0 THEN
        PERFORM pg_advisory_xact_lock(1920467281, hashtext(r.webhook_id));
        SELECT count(*) INTO n FROM deliveries d
         WHERE d.webhook_id = r.webhook_id AND d.lease_until > p_now AND d.id <> p_id;
        IF n >= p_per THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bytea; RETURN;
        END IF;
    END IF;
    UPDATE deliveries d SET lease_holder = p_holder, lease_until = p_until WHERE d.id = p_id;
    RETURN QUERY SELECT 'ok'::text, r.body;
END
$$;
