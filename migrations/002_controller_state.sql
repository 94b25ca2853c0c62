-- State the control loop needs to survive its own restarts.

-- Crash-loop backoff: when the next restart of a crashed plugin is due. With restart_count
-- it lives in the row, so restarting the manager does not reset the backoff.
ALTER TABLE plugins ADD COLUMN next_restart_at TIMESTAMPTZ;

-- Tombstones: every deleted plugin, however it was deleted (the reconciler after an
-- uninstall, or a plain SQL DELETE, also while the manager was down). A managed container
-- whose plugin id has a tombstone is removed, never re-adopted as an orphan.
CREATE TABLE plugin_tombstones (
  plugin_id     UUID PRIMARY KEY,
  forgehook_id  VARCHAR(63) NOT NULL,
  deleted_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_plugin_tombstones_deleted_at ON plugin_tombstones (deleted_at);

CREATE FUNCTION plugins_record_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO plugin_tombstones (plugin_id, forgehook_id)
  VALUES (OLD.id, OLD.forgehook_id)
  ON CONFLICT (plugin_id) DO NOTHING;
  RETURN NULL;
END
$$;

CREATE TRIGGER plugins_record_tombstone
  AFTER DELETE ON plugins
  FOR EACH ROW EXECUTE FUNCTION plugins_record_tombstone();
