-- Access tokens. Only a token's SHA-256 is kept: the token itself is printed once, when it is made, and
-- a copy of the database gives nobody access. Once any row exists, every API and the dashboard need a
-- token (`server/access/`). Tokens are random 256-bit strings, so a plain hash is enough: there is no
-- password to guess that a slow hash would protect.
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    -- read, write or admin (both).
    scope TEXT NOT NULL,
    sha256 BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
