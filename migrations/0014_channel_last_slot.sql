-- The latest slot given in each channel: a message reserving later never goes ahead of it,
-- so burst credit cannot put two posts at once into a channel that is already paced.
ALTER TABLE channel_pace ADD COLUMN last_slot timestamptz;
