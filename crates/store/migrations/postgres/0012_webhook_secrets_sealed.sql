-- bankdirect schema 12 (PostgreSQL): webhook secrets are stored sealed (docs/webhooks.md),
-- longer than the secret itself: the stored length goes from 256 to 512 characters.
ALTER TABLE webhooks DROP CONSTRAINT webhook_secret_length;
ALTER TABLE webhooks ADD CONSTRAINT webhook_secret_length
    CHECK (char_length(secret) BETWEEN 32 AND 512);
