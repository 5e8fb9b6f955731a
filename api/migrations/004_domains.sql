-- Branded domains (api/domains): a team serves its links and bio pages on hostnames it owns.

CREATE TABLE domains (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    -- lower-case ASCII (IDN as punycode), no port, no trailing dot: what the edge compares Host with
    hostname         text NOT NULL CHECK (hostname = lower(hostname) AND hostname ~ '^[a-z0-9.-]+$'),
    kind             text NOT NULL DEFAULT 'links' CHECK (kind IN ('links', 'bio', 'both')),
    challenge_token  text NOT NULL,           -- the TXT value at _linkedge-challenge.<hostname>
    verified_at      timestamptz,             -- ownership proved (DNS or the operator); serves only then
    root_url         text,                    -- where / redirects (kind links), else 404
    not_found_url    text,                    -- unknown codes redirect here instead of 404
    expired_url      text,                    -- expired or used-up links redirect here instead of 410
    apple_app_site_association jsonb,         -- /.well-known/apple-app-site-association
    assetlinks       jsonb,                   -- /.well-known/assetlinks.json
    deleted_at       timestamptz,             -- a deleted domain stays as a tombstone for its disabled links
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- A team adds a hostname once; many teams may claim it, but only one can prove it.
CREATE UNIQUE INDEX domains_team_hostname_key ON domains (team_id, hostname) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX domains_verified_hostname_key ON domains (hostname)
    WHERE verified_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX domains_team_created_idx ON domains (team_id, created_at DESC, id DESC);

-- A link lives on one domain: NULL is the platform's own (PUBLIC_BASE_URL's host). Codes are
-- unique per domain, so two teams can both have /sale on their own hostnames.
ALTER TABLE links
    ADD COLUMN domain_id uuid REFERENCES domains (id),
    ADD COLUMN expired_url text,              -- wins over the domain's expired_url
    ADD COLUMN crawlable boolean NOT NULL DEFAULT false;  -- false: X-Robots-Tag noindex, robots.txt disallows
DROP INDEX links_code_key;
CREATE UNIQUE INDEX links_code_key ON links (code) WHERE domain_id IS NULL;
CREATE UNIQUE INDEX links_domain_code_key ON links (domain_id, code) WHERE domain_id IS NOT NULL;
CREATE INDEX links_domain_idx ON links (domain_id) WHERE domain_id IS NOT NULL;

-- A bio page may be the root of one bio domain (links.acme.com/ shows it).
ALTER TABLE bio_pages ADD COLUMN domain_id uuid REFERENCES domains (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX bio_pages_domain_key ON bio_pages (domain_id) WHERE domain_id IS NOT NULL AND deleted_at IS NULL;

-- Visits to a domain that reached no link: its root, or a code it does not have (Shlink's
-- "orphan visits"), rolled up per hour by the workers.
CREATE TABLE domain_orphan_hourly (
    domain_id   uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    hour        timestamptz NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('root', 'not_found')),
    visits      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (domain_id, hour, kind)
);
