-- The address of the node a Swarm task runs on (its Status.Addr as the swarm manager reports
-- it): with host-mode published ports the plugin answers there, on plugin_tasks.host_port, and
-- the proxy tries the running tasks' nodes in turn (docs/swarm.md). NULL when not known.
ALTER TABLE plugin_tasks ADD COLUMN node_address TEXT;
