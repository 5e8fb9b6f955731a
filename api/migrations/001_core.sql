-- Teams, API keys and short links: the core of linkedge.

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    plan        text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'business')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    team_id      uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    name         text NOT NULL DEFAULT '',
    abilities    text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_team_idx ON api_keys (team_id);

CREATE TABLE links (
    id             uuid PRIMARY KEY,
    team_id        uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    code           text NOT NULL,
    url            text NOT NULL,          -- as given by the client
    destination    text NOT NULL,          -- url with utm fields merged: what the edge redirects to
    enabled        boolean NOT NULL DEFAULT true,
    labels         text[] NOT NULL DEFAULT '{}',
    routing_rules  jsonb NOT NULL DEFAULT '[]',
    redirect_type  smallint NOT NULL DEFAULT 302 CHECK (redirect_type IN (301, 302, 307, 308)),
    forward_query  boolean NOT NULL DEFAULT false,
    max_clicks     integer CHECK (max_clicks IS NULL OR max_clicks > 0),
    password_hash  text,
    title          text,
    notes          text,
    utm            jsonb NOT NULL DEFAULT '{}',
    expires_at     timestamptz,
    scan_count     bigint NOT NULL DEFAULT 0,
    last_scan_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Codes are case-sensitive and unique across the service (one public domain).
CREATE UNIQUE INDEX links_code_key ON links (code);
-- Newest-first cursor pagination per team.
CREATE INDEX links_team_created_idx ON links (team_id, created_at DESC, id DESC);
CREATE INDEX links_labels_idx ON links USING gin (labels);

-- Cache writes that failed after their commit; the worker retries them (see api/cache_sync).
CREATE TABLE cache_repairs (
    kind        text NOT NULL,              -- 'link' | 'page'
    ref         text NOT NULL,              -- link id or page id
    queued_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, ref)
);
