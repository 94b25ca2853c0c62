-- Safe change: rollouts with rollback, volumes that survive, revision history, deletions
-- that stick. See README "Updates, rollback and history".

-- Spec: named volumes, the update policy, a purge asked with the deletion, and an
-- operator's request to retry a rolled-back generation.
ALTER TABLE plugins ADD COLUMN volumes JSONB NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE plugins ADD COLUMN update_policy JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE plugins ADD COLUMN purge_volumes BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE plugins ADD COLUMN rollout_retry_at TIMESTAMPTZ;
ALTER TABLE plugins ADD CONSTRAINT plugins_volumes_array CHECK (jsonb_typeof(volumes) = 'array');
ALTER TABLE plugins ADD CONSTRAINT plugins_update_policy_object CHECK (jsonb_typeof(update_policy) = 'object');

-- Status: the rollout in progress or the last one (phase, images, times, error).
ALTER TABLE plugins ADD COLUMN rollout JSONB;

-- A deleted plugin's container, so that an adopted one (no labels of ours) is removed too
-- and never adopted again.
ALTER TABLE plugin_tombstones ADD COLUMN container_id TEXT;
ALTER TABLE plugin_tombstones ADD COLUMN container_name TEXT;
CREATE INDEX idx_plugin_tombstones_container_id ON plugin_tombstones (container_id) WHERE container_id IS NOT NULL;

CREATE OR REPLACE FUNCTION plugins_record_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO plugin_tombstones (plugin_id, forgehook_id, container_id, container_name)
  VALUES (OLD.id, OLD.forgehook_id, OLD.container_id, OLD.container_name)
  ON CONFLICT (plugin_id) DO NOTHING;
  RETURN NULL;
END
$$;

-- The new spec columns bump generation like the others.
CREATE OR REPLACE FUNCTION plugins_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
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
     OR NEW.requested_host_port IS DISTINCT FROM OLD.requested_host_port
     OR NEW.volumes IS DISTINCT FROM OLD.volumes
     OR NEW.update_policy IS DISTINCT FROM OLD.update_policy THEN
    NEW.generation := OLD.generation + 1;
  ELSE
    -- generation is not writable by hand: it only moves with the spec.
    NEW.generation := OLD.generation;
  END IF;
  RETURN NEW;
END
$$;

-- A retry request is desired state the controller must see, though it is no new generation.
CREATE OR REPLACE FUNCTION plugins_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
      OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at
      OR NEW.rollout_retry_at IS DISTINCT FROM OLD.rollout_retry_at;
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

-- Settings the daemon writes at start for triggers to read (every input, SQL included,
-- goes through the triggers; a session setting would not reach a psql session).
CREATE TABLE flowforge_settings (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);

-- Revision history: every generation's spec, written in the same transaction as the change
-- whatever wrote it (API, spec file, SQL). Values are kept as the plugins row keeps them,
-- secrets included, because `rollout undo` writes them back; every view of them redacts
-- the way the plugin view does. Pruned to the last REVISION_HISTORY_LIMIT per plugin.
CREATE TABLE plugin_revisions (
  plugin_id            UUID NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  revision             INTEGER NOT NULL,
  forgehook_id         VARCHAR(63) NOT NULL,
  source               VARCHAR(255) NOT NULL,
  manifest             JSONB NOT NULL,
  config               JSONB NOT NULL,
  environment          JSONB NOT NULL,
  desired_state        VARCHAR(20) NOT NULL,
  requested_host_port  INTEGER,
  labels               JSONB NOT NULL,
  volumes              JSONB NOT NULL,
  update_policy        JSONB NOT NULL,
  created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (plugin_id, revision)
);

CREATE FUNCTION plugins_record_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  keep integer;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.generation = OLD.generation THEN
    RETURN NULL;
  END IF;
  INSERT INTO plugin_revisions (plugin_id, revision, forgehook_id, source, manifest, config, environment,
                                desired_state, requested_host_port, labels, volumes, update_policy)
  VALUES (NEW.id, NEW.generation, NEW.forgehook_id, NEW.source, NEW.manifest, NEW.config, NEW.environment,
          NEW.desired_state, NEW.requested_host_port, NEW.labels, NEW.volumes, NEW.update_policy)
  ON CONFLICT (plugin_id, revision) DO NOTHING;
  SELECT COALESCE((SELECT value::integer FROM flowforge_settings WHERE key = 'revision_history_limit'), 10) INTO keep;
  DELETE FROM plugin_revisions WHERE plugin_id = NEW.id AND revision <= NEW.generation - keep;
  RETURN NULL;
END
$$;

CREATE TRIGGER plugins_record_revision
  AFTER INSERT OR UPDATE ON plugins
  FOR EACH ROW EXECUTE FUNCTION plugins_record_revision();

-- Plugins that exist before this migration: their current spec is their first recorded revision.
INSERT INTO plugin_revisions (plugin_id, revision, forgehook_id, source, manifest, config, environment,
                              desired_state, requested_host_port, labels, volumes, update_policy)
SELECT id, generation, forgehook_id, source, manifest, config, environment,
       desired_state, requested_host_port, labels, volumes, update_policy
FROM plugins;

-- Named volumes in SQL: one row per declared volume, with the Docker volume it is.
CREATE VIEW plugin_volumes AS
SELECT
  p.id AS plugin_id,
  p.forgehook_id,
  v.value->>'name' AS name,
  'forgehook-' || p.forgehook_id || '-' || (v.value->>'name') AS docker_volume,
  v.value->>'mountPath' AS mount_path,
  COALESCE((v.value->>'readOnly')::boolean, false) AS read_only
FROM plugins p, jsonb_array_elements(p.volumes) AS v(value);

-- The drift view also says what a rollout is doing.
CREATE OR REPLACE VIEW plugin_drift AS
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
  updated_at,
  rollout->>'phase' AS rollout_phase,
  rollout->>'error' AS rollout_error
FROM plugins;
