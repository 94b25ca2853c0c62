-- FlowForge plugin manager: desired and observed plugin state, audit trail, usage metrics.
--
-- Each plugins row has two halves (see README.md, "The database"):
--   spec   (written by inputs: API, spec folder, SQL): forgehook_id, manifest, config,
--          environment, desired_state, requested_host_port, labels, source,
--          deletion_requested_at
--   status (written only by the reconciler): status, container_id, container_name,
--          host_port, health_status, last_health_check, error, restart_count,
--          observed_generation, installed_at, started_at, stopped_at
-- Triggers keep generation, resource_version and updated_at current and NOTIFY every change.

-- Global, monotonic version of every plugins write (like Kubernetes' resourceVersion).
CREATE SEQUENCE plugins_resource_version_seq;

CREATE TABLE plugins (
  id                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- spec
  forgehook_id           VARCHAR(63) NOT NULL,
  manifest               JSONB NOT NULL,
  config                 JSONB NOT NULL DEFAULT '{}'::jsonb,
  environment            JSONB NOT NULL DEFAULT '{}'::jsonb,
  desired_state          VARCHAR(16) NOT NULL DEFAULT 'running',
  requested_host_port    INTEGER,
  labels                 JSONB NOT NULL DEFAULT '{}'::jsonb,
  source                 TEXT NOT NULL DEFAULT 'sql',
  deletion_requested_at  TIMESTAMPTZ,

  -- status
  status                 VARCHAR(50) NOT NULL DEFAULT 'installing',
  container_id           VARCHAR(255),
  container_name         VARCHAR(255),
  host_port              INTEGER,
  health_status          VARCHAR(50) NOT NULL DEFAULT 'unknown',
  last_health_check      TIMESTAMPTZ,
  error                  TEXT,
  restart_count          INTEGER NOT NULL DEFAULT 0,
  observed_generation    BIGINT NOT NULL DEFAULT 0,
  installed_at           TIMESTAMPTZ,
  started_at             TIMESTAMPTZ,
  stopped_at             TIMESTAMPTZ,

  -- bookkeeping (triggers)
  generation             BIGINT NOT NULL DEFAULT 1,
  resource_version       BIGINT NOT NULL DEFAULT nextval('plugins_resource_version_seq'),
  created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),

  CONSTRAINT plugins_forgehook_id_key UNIQUE (forgehook_id),
  CONSTRAINT plugins_container_name_key UNIQUE (container_name),
  -- forgehook_id becomes a container name and a path: a DNS label (RFC 1123).
  CONSTRAINT plugins_forgehook_id_dns_label
    CHECK (forgehook_id ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
  CONSTRAINT plugins_desired_state_check CHECK (desired_state IN ('running', 'stopped')),
  CONSTRAINT plugins_status_check CHECK (status IN
    ('installing', 'installed', 'starting', 'running', 'stopping', 'stopped', 'uninstalling', 'error')),
  CONSTRAINT plugins_health_status_check CHECK (health_status IN ('unknown', 'starting', 'healthy', 'unhealthy')),
  CONSTRAINT plugins_manifest_object CHECK (jsonb_typeof(manifest) = 'object'),
  CONSTRAINT plugins_config_object CHECK (jsonb_typeof(config) = 'object'),
  CONSTRAINT plugins_environment_object CHECK (jsonb_typeof(environment) = 'object'),
  CONSTRAINT plugins_labels_object CHECK (jsonb_typeof(labels) = 'object'),
  CONSTRAINT plugins_requested_host_port_range CHECK (requested_host_port BETWEEN 1 AND 65535),
  CONSTRAINT plugins_host_port_range CHECK (host_port BETWEEN 1 AND 65535),
  CONSTRAINT plugins_restart_count_check CHECK (restart_count >= 0)
);

-- Indexes of the guide (forgehook_id is covered by its unique constraint).
CREATE INDEX idx_plugins_status ON plugins (status);
CREATE INDEX idx_plugins_container_id ON plugins (container_id);
CREATE UNIQUE INDEX idx_plugins_host_port ON plugins (host_port) WHERE host_port IS NOT NULL;
CREATE INDEX idx_plugins_installed_at ON plugins (installed_at);

-- The audit trail outlives the plugin: deleting a plugin sets plugin_id to NULL and keeps
-- forgehook_id, so the history of an uninstalled plugin can still be read by name.
CREATE TABLE plugin_events (
  id            BIGSERIAL PRIMARY KEY,
  plugin_id     UUID REFERENCES plugins (id) ON DELETE SET NULL,
  forgehook_id  VARCHAR(63) NOT NULL,
  event_type    VARCHAR(100) NOT NULL,
  data          JSONB NOT NULL DEFAULT '{}'::jsonb,
  "timestamp"   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_plugin_events_plugin_id_timestamp ON plugin_events (plugin_id, "timestamp");
CREATE INDEX idx_plugin_events_timestamp ON plugin_events ("timestamp");
CREATE INDEX idx_plugin_events_forgehook_id_timestamp ON plugin_events (forgehook_id, "timestamp");

CREATE TABLE plugin_metrics (
  id                      BIGSERIAL PRIMARY KEY,
  plugin_id               UUID NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  request_count           BIGINT NOT NULL DEFAULT 0,
  error_count             BIGINT NOT NULL DEFAULT 0,
  total_response_time_ms  BIGINT NOT NULL DEFAULT 0,
  avg_response_time_ms    DECIMAL(12, 3),
  cpu_usage_percent       DECIMAL(7, 3),
  memory_usage_mb         DECIMAL(12, 3),
  recorded_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_plugin_metrics_plugin_id_recorded_at ON plugin_metrics (plugin_id, recorded_at);
CREATE INDEX idx_plugin_metrics_recorded_at ON plugin_metrics (recorded_at);

-- Bookkeeping on every write: a new resource_version; on update, updated_at, and a new
-- generation when a spec column changed. Inserts always start at generation 1.
CREATE FUNCTION plugins_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.resource_version := nextval('plugins_resource_version_seq');
  IF TG_OP = 'INSERT' THEN
    NEW.generation := 1;
    NEW.observed_generation := COALESCE(NEW.observed_generation, 0);
    RETURN NEW;
  END IF;
  NEW.updated_at := now();
  IF NEW.manifest IS DISTINCT FROM OLD.manifest
     OR NEW.config IS DISTINCT FROM OLD.config
     OR NEW.environment IS DISTINCT FROM OLD.environment
     OR NEW.desired_state IS DISTINCT FROM OLD.desired_state
     OR NEW.labels IS DISTINCT FROM OLD.labels
     OR NEW.requested_host_port IS DISTINCT FROM OLD.requested_host_port THEN
    NEW.generation := OLD.generation + 1;
  ELSE
    -- generation is not writable by hand: it only moves with the spec.
    NEW.generation := OLD.generation;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER plugins_bookkeeping
  BEFORE INSERT OR UPDATE ON plugins
  FOR EACH ROW EXECUTE FUNCTION plugins_bookkeeping();

-- Every committed insert, update and delete reaches the controller, also when it was a
-- plain SQL statement. The payload is small (NOTIFY allows 8000 bytes): the controller
-- re-reads the row. "spec" says whether desired state changed (insert, delete, a new
-- generation, or a deletion request) as opposed to a status-only write.
CREATE FUNCTION plugins_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_ref plugins;
  spec_changed boolean;
BEGIN
  IF TG_OP = 'DELETE' THEN
    row_ref := OLD;
    spec_changed := true;
  ELSE
    row_ref := NEW;
    spec_changed := TG_OP = 'INSERT'
      OR NEW.generation <> OLD.generation
      OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at;
  END IF;
  PERFORM pg_notify('plugin_changes', json_build_object(
    'op', lower(TG_OP),
    'id', row_ref.id,
    'name', row_ref.forgehook_id,
    'generation', row_ref.generation,
    'resourceVersion', row_ref.resource_version,
    'spec', spec_changed
  )::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER plugins_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON plugins
  FOR EACH ROW EXECUTE FUNCTION plugins_notify_change();

-- Events written in SQL may leave out forgehook_id: it is copied from the plugin.
CREATE FUNCTION plugin_events_fill_forgehook_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.forgehook_id IS NULL AND NEW.plugin_id IS NOT NULL THEN
    SELECT forgehook_id INTO NEW.forgehook_id FROM plugins WHERE id = NEW.plugin_id;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER plugin_events_fill_forgehook_id
  BEFORE INSERT ON plugin_events
  FOR EACH ROW EXECUTE FUNCTION plugin_events_fill_forgehook_id();

-- Drift at a glance: what is declared against what was last observed.
CREATE VIEW plugin_drift AS
SELECT
  id,
  forgehook_id,
  desired_state,
  status,
  health_status,
  generation,
  observed_generation,
  CASE
    WHEN deletion_requested_at IS NOT NULL THEN 'deleting'
    WHEN status = 'error' THEN 'error'
    WHEN observed_generation < generation THEN 'pending'
    WHEN status <> desired_state THEN 'converging'
    ELSE 'converged'
  END AS sync_state,
  (deletion_requested_at IS NULL
    AND observed_generation = generation
    AND status = desired_state) AS converged,
  error,
  updated_at
FROM plugins;
