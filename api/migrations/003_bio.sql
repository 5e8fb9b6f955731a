-- Bio pages and their blocks (api/bio). One store behind both API shapes (SPEC §2.5).

CREATE TABLE bio_pages (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    handle        text NOT NULL CHECK (handle ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    display_name  text NOT NULL DEFAULT '',   -- page-data shape: title
    headline      text NOT NULL DEFAULT '',   -- page-data shape: description
    bio           text NOT NULL DEFAULT '',
    avatar_url    text,
    theme         jsonb NOT NULL DEFAULT '{}', -- palette, accent, button_style, font, other tokens kept
    seo           jsonb NOT NULL DEFAULT '{}', -- title, description, image, noindex
    page_data     jsonb NOT NULL DEFAULT '{}', -- page-data shape keys other than theme/avatar_url/links
    is_published  boolean NOT NULL DEFAULT false,
    published_at  timestamptz,                -- stamped by the first publish, kept afterwards
    deleted_at    timestamptz,                -- set by DELETE: stops serving at once; a job removes the rows
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Handles are unique case-insensitively among live pages; a deleted page frees its handle at once.
CREATE UNIQUE INDEX bio_pages_handle_key ON bio_pages (lower(handle)) WHERE deleted_at IS NULL;
-- Newest-first cursor pagination per team.
CREATE INDEX bio_pages_team_created_idx ON bio_pages (team_id, created_at DESC, id DESC);

CREATE TABLE bio_blocks (
    id          uuid PRIMARY KEY,
    page_id     uuid NOT NULL REFERENCES bio_pages (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('link', 'header', 'text', 'social', 'embed', 'image', 'form')),
    label       text NOT NULL DEFAULT '',
    url         text,
    link_id     uuid REFERENCES links (id) ON DELETE SET NULL,
    icon        text,
    sort_order  integer NOT NULL DEFAULT 0,
    is_active   boolean NOT NULL DEFAULT true,
    config      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bio_blocks_page_idx ON bio_blocks (page_id, sort_order);
-- Pages to re-render when a short link behind a block changes or goes away.
CREATE INDEX bio_blocks_link_idx ON bio_blocks (link_id) WHERE link_id IS NOT NULL;
