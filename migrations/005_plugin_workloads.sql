-- Real plugin workloads: the host ports of a plugin's extra ports (manifest.ports), kept for
-- its life like the primary one (host_port), and spec.network (isolated: off the
-- installation network). See README "The spec format".

-- Status: [{name, containerPort, protocol, hostPort}], assigned by the controller.
ALTER TABLE plugins ADD COLUMN extra_ports JSONB NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE plugins ADD CONSTRAINT plugins_extra_ports_array CHECK (jsonb_typeof(extra_ports) = 'array');

-- Spec: {isolated: true} keeps the plugin off flowforge-<MANAGER_INSTANCE>.
ALTER TABLE plugins ADD COLUMN network JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE plugins ADD CONSTRAINT plugins_network_object CHECK (jsonb_typeof(network) = 'object');

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
     OR NEW.network IS DISTINCT FROM OLD.network THEN
    NEW.generation := OLD.generation + 1;
  ELSE
    -- generation is not writable by hand: it only moves with the spec.
    NEW.generation := OLD.generation;
  END IF;
  RETURN NEW;
END
$$;

ALTER TABLE plugin_revisions ADD COLUMN network JSONB NOT NULL DEFAULT '{}'::jsonb;

CREATE OR REPLACE FUNCTION plugins_record_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  keep integer;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.generation = OLD.generation THEN
    RETURN NULL;
  END IF;
  INSERT INTO plugin_revisions (plugin_id, revision, forgehook_id, source, manifest, config, environment,
                                desired_state, requested_host_port, labels, volumes, update_policy, network)
  VALUES (NEW.id, NEW.generation, NEW.forgehook_id, NEW.source, NEW.manifest, NEW.config, NEW.environment,
          NEW.desired_state, NEW.requested_host_port, NEW.labels, NEW.volumes, NEW.update_policy, NEW.network)
  ON CONFLICT (plugin_id, revision) DO NOTHING;
  SELECT COALESCE((SELECT value::integer FROM flowforge_settings WHERE key = 'revision_history_limit'), 10) INTO keep;
  DELETE FROM plugin_revisions WHERE plugin_id = NEW.id AND revision <= NEW.generation - keep;
  RETURN NULL;
END
$$;

-- Every published port of every plugin: the primary one (host_port) and the extras.
CREATE VIEW plugin_ports AS
-- A row written in SQL may hold anything: a port that is not a number shows as NULL, never an error.
SELECT id AS plugin_id, forgehook_id, 'primary' AS name,
       CASE WHEN manifest->>'port' ~ '^[0-9]{1,5}$' THEN (manifest->>'port')::integer END AS container_port, 'tcp' AS protocol, host_port
FROM plugins
WHERE host_port IS NOT NULL
UNION ALL
SELECT p.id, p.forgehook_id, e.value->>'name',
       CASE WHEN e.value->>'containerPort' ~ '^[0-9]{1,5}$' THEN (e.value->>'containerPort')::integer END,
       COALESCE(e.value->>'protocol', 'tcp'),
       CASE WHEN e.value->>'hostPort' ~ '^[0-9]{1,5}$' THEN (e.value->>'hostPort')::integer END
FROM plugins p, jsonb_array_elements(p.extra_ports) AS e(value);
