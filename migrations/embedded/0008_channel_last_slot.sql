-- The latest slot given in each channel (PostgreSQL's 0014 says why).
ALTER TABLE channel_pace ADD COLUMN last_slot TEXT;
