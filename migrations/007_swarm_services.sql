-- Swarm services (RUNTIME=swarm): how many copies of a plugin run and where, what the
-- swarm reconciler observes of each Swarm task, and the replica drift report. See README
-- "Replicas and placement". On the docker runtime replicas stays 1, placement {}, and the
-- replica status columns NULL.

-- Spec: spec.replicas and spec.placement ({constraints, preferences, maxReplicasPerNode}).
ALTER TABLE plugins ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;
ALTER TABLE plugins ADD CONSTRAINT plugins_replicas_range CHECK (replicas BETWEEN 1 AND 100);
ALTER TABLE plugins ADD COLUMN placement JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE plugins ADD CONSTRAINT plugins_placement_object CHECK (jsonb_typeof(placement) = 'object');

-- Status (written by the reconciler only, like the other status columns): the replicas the
-- plugin's service asks for, and how many of its tasks run. NULL on the docker runtime.
ALTER TABLE plugins ADD COLUMN replicas_desired INTEGER;
ALTER TABLE plugins ADD COLUMN replicas_running INTEGER;
ALTER TABLE plugins ADD CONSTRAINT plugins_replicas_status_counts CHECK (replicas_desired >= 0 AND replicas_running >= 0);

-- The new spec columns bump generation like the others (a status-only write, the replica
-- counts included, keeps it: plugins_notify_change then sends spec=false, as for any status).
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
     OR NEW.update_policy IS DISTINCT FROM OLD.update_policy
     OR NEW.network IS DISTINCT FROM OLD.network
     OR NEW.replicas IS DISTINCT FROM OLD.replicas
     OR NEW.placement IS DISTINCT FROM OLD.placement THEN
    NEW.generation := OLD.generation + 1;
  ELSE
    -- generation is not writable by hand: it only moves with the spec.
    NEW.generation := OLD.generation;
  END IF;
  RETURN NEW;
END
$$;

-- Revisions record them too (rollout undo writes them back). Older revisions ran one copy
-- with no placement: the defaults are what they were.
ALTER TABLE plugin_revisions ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;
ALTER TABLE plugin_revisions ADD COLUMN placement JSONB NOT NULL DEFAULT '{}'::jsonb;

CREATE OR REPLACE FUNCTION plugins_record_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  keep integer;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.generation = OLD.generation THEN
    RETURN NULL;
  END IF;
  INSERT INTO plugin_revisions (plugin_id, revision, forgehook_id, source, manifest, config, environment,
                                desired_state, requested_host_port, labels, volumes, update_policy, network,
                                replicas, placement)
  VALUES (NEW.id, NEW.generation, NEW.forgehook_id, NEW.source, NEW.manifest, NEW.config, NEW.environment,
          NEW.desired_state, NEW.requested_host_port, NEW.labels, NEW.volumes, NEW.update_policy, NEW.network,
          NEW.replicas, NEW.placement)
  ON CONFLICT (plugin_id, revision) DO NOTHING;
  SELECT COALESCE((SELECT value::integer FROM flowforge_settings WHERE key = 'revision_history_limit'), 10) INTO keep;
  DELETE FROM plugin_revisions WHERE plugin_id = NEW.id AND revision <= NEW.generation - keep;
  RETURN NULL;
END
$$;

-- What the swarm reconciler observes of each Swarm task of a plugin's service, replaced per
-- plugin at each observation (PluginStore.tasks.replaceTasks). Observed state only: no
-- trigger, no NOTIFY (nothing reconciles on it; the plugin's own status columns say what
-- changed), and gone with the plugin.
CREATE TABLE plugin_tasks (
  plugin_id      UUID NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  task_id        TEXT PRIMARY KEY,
  -- The replica slot the task fills (NULL when Swarm gives none).
  slot           INTEGER,
  node_id        TEXT,
  node_name      TEXT,
  -- ready | down | disconnected | unknown: the node as the manager saw it with the task.
  node_state     TEXT,
  -- Swarm's task states (the Engine API's TaskState): new, allocated, pending, assigned,
  -- accepted, preparing, ready, starting, running, complete, failed, shutdown, rejected,
  -- orphaned, remove.
  state          TEXT NOT NULL,
  desired_state  TEXT NOT NULL,
  container_id   TEXT,
  error          TEXT,
  message        TEXT,
  health         TEXT,
  host_port      INTEGER,
  image          TEXT,
  created_at     TIMESTAMPTZ,
  updated_at     TIMESTAMPTZ NOT NULL,
  CONSTRAINT plugin_tasks_node_state_check CHECK (node_state IN ('ready', 'down', 'disconnected', 'unknown')),
  CONSTRAINT plugin_tasks_state_check CHECK (state IN
    ('new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove')),
  CONSTRAINT plugin_tasks_desired_state_check CHECK (desired_state IN
    ('new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove')),
  CONSTRAINT plugin_tasks_host_port_range CHECK (host_port BETWEEN 1 AND 65535)
);

CREATE INDEX idx_plugin_tasks_plugin_id ON plugin_tasks (plugin_id);

-- Replicas wanted against replicas running, for every plugin and on either runtime:
--   SELECT * FROM plugin_replicas WHERE running < desired;   -- the drift report
-- desired is what the spec asks for now: spec.replicas while the plugin should run, 0 when
-- it is stopped or being deleted. running is the swarm runtime's count (replicas_running)
-- or, on the docker runtime, 1 for a running plugin with a container, else 0.
CREATE VIEW plugin_replicas AS
SELECT
  forgehook_id,
  id AS plugin_id,
  CASE WHEN desired_state = 'running' AND deletion_requested_at IS NULL THEN replicas ELSE 0 END AS desired,
  COALESCE(replicas_running, CASE WHEN status = 'running' AND container_id IS NOT NULL THEN 1 ELSE 0 END) AS running,
  status,
  error
FROM plugins;
