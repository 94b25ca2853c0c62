-- Live events across managers: every audit event recorded sends a notification with its id
-- and the manager that wrote it (the session setting flowforge.manager, set on the daemon's
-- pool connections; empty for psql and other clients). Each manager publishes to its own
-- live streams (WebSocket, SSE) the events other writers recorded; its own it publishes as
-- it writes them.
CREATE FUNCTION plugin_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('plugin_events', json_build_object(
    'id', NEW.id,
    'origin', coalesce(current_setting('flowforge.manager', true), '')
  )::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER plugin_events_notify
  AFTER INSERT ON plugin_events
  FOR EACH ROW EXECUTE FUNCTION plugin_events_notify();
